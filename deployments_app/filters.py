"""Query parameters of the deployment list."""

import django_filters

from deployments_app import selectors
from deployments_app.models import Alert, AlertSeverity, AlertState, Deployment, DeploymentStatus
from registry_site.filters import StrictBooleanFilter, choice_filter


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
    rule = django_filters.NumberFilter(field_name="rule_id", min_value=1, max_value=2**63 - 1)
    version = django_filters.CharFilter(field_name="version__version")
    severity = choice_filter(AlertSeverity.choices, field_name="rule__severity")
    target = django_filters.CharFilter(method="filter_target", help_text="A target's name, in any case.")
    acknowledged = StrictBooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Alert
        fields = ["state", "model", "rule", "version", "severity", "target", "acknowledged"]

    def filter_target(self, queryset, name, value):
        target = selectors.find_target(value) if selectors.is_target_name(value) else None
        return queryset.filter(rule__target=target) if target else queryset.none()
