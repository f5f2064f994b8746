"""Query parameters of the deployment list."""

import django_filters
from drf_spectacular.utils import extend_schema_field

from deployments_app import selectors
from deployments_app.models import Alert, AlertSeverity, AlertState, Deployment, DeploymentStatus
from registry_site.filters import BOOLEAN_WORDS, StrictBooleanFilter, choice_filter


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


class AlertFilter(django_filters.FilterSet):
    """GET /alerts?state=firing&model=fraud&severity=critical&target=production&acknowledged=false"""

    state = choice_filter(AlertState.choices)
    model = django_filters.CharFilter(field_name="rule__model__name")
    version = django_filters.CharFilter(field_name="version__version")
    severity = choice_filter(AlertSeverity.choices, field_name="rule__severity")
    target = django_filters.CharFilter(method="filter_target", help_text="A target's name, in any case.")
    acknowledged = StrictBooleanFilter(method="filter_acknowledged", help_text="Someone acknowledged it (or not).")

    class Meta:
        model = Alert
        fields = ["state", "model", "version", "severity", "target", "acknowledged"]

    def filter_target(self, queryset, name, value):
        target = selectors.find_target(value) if selectors.is_target_name(value) else None
        return queryset.filter(rule__target=target) if target else queryset.none()

    @extend_schema_field({"type": "string", "enum": list(BOOLEAN_WORDS)})  # not the column's date-time
    def filter_acknowledged(self, queryset, name, value):
        return queryset.filter(acknowledged_at__isnull=not value)
