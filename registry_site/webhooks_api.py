"""The webhook subscriptions' API (registry_site.webhooks): GET/POST /webhooks, GET/PATCH/DELETE
/webhooks/{id}, the delivery log GET /webhooks/{id}/deliveries[/{delivery}] and POST
/webhooks/{id}/deliveries/{delivery}/redeliver.

Who may: the CRUD map on the webhook models (registry_site.permissions), which only the admin role
holds; never public reads (a subscription's URL and its deliveries say where the registry's news go)."""

from __future__ import annotations

import json

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from registry_site import webhooks
from registry_site.errors import NotFound
from registry_site.fields import JSONValueField, RegistryModelSerializer
from registry_site.filters import choice_filter
from registry_site.idempotency import IdempotentPostsMixin
from registry_site.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from registry_site.validators import WEBHOOK_EVENT_TYPES, validate_webhook_events

EVENT_CHOICES = ["*", *WEBHOOK_EVENT_TYPES]
# What the worker and the clock keep, shown and never written through the API.
SUBSCRIPTION_STATE = [
    "consecutive_failures",
    "failing_since",
    "disabled_at",
    "disabled_reason",
    "created_at",
    "updated_at",
]


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": EVENT_CHOICES}, "minItems": 1})
class WebhookEventsField(JSONValueField):
    """A list of event types, refused as a whole with one message (validate_webhook_events)."""

    default_validators = [validate_webhook_events]


class WebhookSubscriptionSerializer(RegistryModelSerializer):
    """A subscription. Its secret is write-only: the answer to POST shows it once (generated when not
    given); PATCH may replace it."""

    events = WebhookEventsField(help_text='The event types to send, or ["*"] for all of them.')

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "description", "secret", "events", "model_filter", "enabled", *SUBSCRIPTION_STATE]
        read_only_fields = ["id", *SUBSCRIPTION_STATE]
        extra_kwargs = {
            "secret": {"write_only": True, "required": False},
            "description": {"required": False},
            "model_filter": {"required": False},
            "enabled": {"required": False},
        }


class WebhookSubscriptionChangeSerializer(WebhookSubscriptionSerializer):
    class Meta(WebhookSubscriptionSerializer.Meta):
        extra_kwargs = {
            **WebhookSubscriptionSerializer.Meta.extra_kwargs,
            "url": {"required": False},
        }

    def get_fields(self):
        fields = super().get_fields()
        fields["events"].required = False
        return fields


class WebhookCreatedSerializer(WebhookSubscriptionSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: keep it to verify the signatures.")


class WebhookAttemptSerializer(RegistryModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "at", "status_code", "latency_ms", "response_excerpt", "error"]
        read_only_fields = fields


class WebhookDeliverySerializer(RegistryModelSerializer):
    """A delivery: one event for one subscription, the webhook-id it is sent with, where it stands."""

    class Meta:
        model = WebhookDelivery
        fields = ["id", *WebhookDelivery.SHOWN_FIELDS]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.JSONField(source="body_json", read_only=True, help_text="The body sent, as JSON.")
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True, help_text="Every attempt, newest first.")

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = choice_filter(DeliveryStatus.choices)
    event_type = choice_filter([(name, name) for name in WEBHOOK_EVENT_TYPES])

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


class WebhookSubscriptionViewSet(IdempotentPostsMixin, viewsets.ModelViewSet):
    queryset = WebhookSubscription.objects.all()
    serializer_class = WebhookSubscriptionSerializer
    parser_classes = [JSONParser]
    ordering = ("id",)
    private_reads = True

    def get_object(self) -> WebhookSubscription:
        subscription = WebhookSubscription.objects.filter(pk=self.kwargs["pk"]).first()
        if subscription is None:
            raise NotFound(f"No webhook subscription {self.kwargs['pk']}.")
        return subscription

    @extend_schema(request=WebhookSubscriptionSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        body = WebhookSubscriptionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subscription = webhooks.create_subscription(**body.validated_data)
        answer = WebhookCreatedSerializer(subscription).data
        response = Response(answer, status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/webhooks/{subscription.pk}")
        return response

    @extend_schema(request=WebhookSubscriptionChangeSerializer, responses=WebhookSubscriptionSerializer)
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        body = WebhookSubscriptionChangeSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        subscription = webhooks.update_subscription(subscription=self.get_object(), changes=dict(body.validated_data))
        return Response(WebhookSubscriptionSerializer(subscription).data)

    def perform_destroy(self, instance: WebhookSubscription) -> None:
        webhooks.delete_subscription(subscription=instance)


class WebhookDeliveryViewSet(
    IdempotentPostsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The delivery log of one subscription, newest first, and manual redelivery (change_webhookdelivery)."""

    queryset = WebhookDelivery.objects.all()
    serializer_class = WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter
    ordering = ("-id",)
    private_reads = True
    action_verbs = {"redeliver": "change"}

    def get_queryset(self):
        subscription = WebhookSubscription.objects.filter(pk=self.kwargs["pk"]).first()
        if subscription is None:
            raise NotFound(f"No webhook subscription {self.kwargs['pk']}.")
        return WebhookDelivery.objects.filter(subscription=subscription)

    def get_serializer_class(self):
        return (
            WebhookDeliveryDetailSerializer if self.action in ("retrieve", "redeliver") else WebhookDeliverySerializer
        )

    def get_object(self) -> WebhookDelivery:
        delivery = self.get_queryset().filter(pk=self.kwargs["delivery"]).first()
        if delivery is None:
            raise NotFound(f"No delivery {self.kwargs['delivery']} for webhook subscription {self.kwargs['pk']}.")
        return delivery

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response(WebhookDeliveryDetailSerializer(_with_payload(self.get_object())).data)

    @extend_schema(request=None, responses=WebhookDeliveryDetailSerializer)
    def redeliver(self, request: Request, *args, **kwargs) -> Response:
        """Send the delivery again soon (the worker picks it up), with the same webhook-id."""
        delivery = webhooks.redeliver(delivery=self.get_object())
        return Response(WebhookDeliveryDetailSerializer(_with_payload(delivery)).data, status=status.HTTP_202_ACCEPTED)


def _with_payload(delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.body_json = json.loads(delivery.body)  # type: ignore[attr-defined]
    return delivery
