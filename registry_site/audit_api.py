"""GET /audit: the audit trail, newest first, read-only."""

from __future__ import annotations

import django_filters
from rest_framework import mixins, serializers, viewsets

from registry_site.filters import IsoDateTimeFilter
from registry_site.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "via",
            "client_address",
            "request_id",
            "action",
            "object_type",
            "object_repr",
            "model_name",
            "changes",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model_name")
    actor = django_filters.CharFilter(field_name="actor")
    action = django_filters.CharFilter(field_name="action")
    request_id = django_filters.CharFilter(field_name="request_id")
    since = IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["model", "actor", "action", "request_id", "since", "until"]


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering = ("-id",)
    # The trail says who did what from where: never public, even where reads are.
    private_reads = True
    model_name_field = "model_name"  # a token limited to a model pattern sees only those models' events
