"""Query parameters of the deployment list."""

import django_filters

from deployments_app import selectors
from deployments_app.models import Deployment, DeploymentStatus
from registry_site.filters import choice_filter


class DeploymentFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__name")
    version = django_filters.CharFilter(field_name="model_version__version")
    target = django_filters.CharFilter(method="filter_target", help_text="A target's name, in any case.")
    status = choice_filter(DeploymentStatus.choices, field_name="deployment_status")

    class Meta:
        model = Deployment
        fields = ["model", "version", "target", "status"]

    def filter_target(self, queryset, name, value):
        # `Production` is `production` here as everywhere; the exact name then uses the column's index.
        target = selectors.find_target(value) if selectors.is_target_name(value) else None
        return queryset.filter(deployment_target=target.name) if target else queryset.none()
