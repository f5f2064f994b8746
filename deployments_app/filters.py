"""Query parameters of the deployment list."""

import django_filters

from deployments_app.models import Deployment, DeploymentStatus
from registry_site.filters import choice_filter


class DeploymentFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__name")
    version = django_filters.CharFilter(field_name="model_version__version")
    target = django_filters.CharFilter(field_name="deployment_target")
    status = choice_filter(DeploymentStatus.choices, field_name="deployment_status")

    class Meta:
        model = Deployment
        fields = ["model", "version", "target", "status"]
