"""API tokens and the audit trail: who may write to the registry, and what each write did."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry_site.permissions import TokenScope
from registry_site.prepared import PreparedInsertModel
from registry_site.validators import (
    model_pattern_validator,
    validate_target_list,
    validate_webhook_events,
    validate_webhook_secret,
)


class ApiToken(models.Model):
    """A bearer token for scripts and CI, tied to a Django user (whose groups are its roles). Only the
    sha256 of the token is stored; the token itself is shown once, when it is created.

    Its scope narrows what its user may (registry_site.permissions.TokenScope): the request acts with
    the permissions both hold. Tokens made before scopes existed have every scope and no limit, so they
    act as their user, as they did."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-pipeline'.")
    prefix = models.CharField(max_length=12, editable=False, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scope_read = models.BooleanField(
        "read", default=True, help_text="Read models, versions, files, deployments and targets."
    )
    scope_write = models.BooleanField(
        "write", default=False, help_text="Create, change and delete models and versions; upload files."
    )
    scope_deploy = models.BooleanField(
        "deploy", default=False, help_text="Deploy and roll back (only to the deploy targets below, if named)."
    )
    scope_admin = models.BooleanField(
        "admin", default=False, help_text="Manage targets and read the audit trail (with the admin role)."
    )
    deploy_targets = models.CharField(
        max_length=1000,
        blank=True,
        default="",
        validators=[validate_target_list],
        help_text="Targets the deploy scope is limited to, separated by commas (staging,qa); empty: every target.",
    )
    model_pattern = models.CharField(
        max_length=128,
        blank=True,
        default="",
        validators=[model_pattern_validator],
        help_text="Only models whose name matches this pattern ('vision-*'; '*' any run, '?' one character); "
        "empty: every model.",
    )

    class Meta:
        db_table = "api_tokens"
        ordering = ["-id"]
        verbose_name = "API token"
        constraints = [
            models.CheckConstraint(
                condition=Q(scope_read=True) | Q(scope_write=True) | Q(scope_deploy=True) | Q(scope_admin=True),
                name="api_tokens_have_a_scope",
                violation_error_message="Give the token at least one scope: read, write, deploy or admin.",
            ),
            models.CheckConstraint(
                condition=Q(scope_deploy=True) | Q(deploy_targets=""),
                name="api_tokens_deploy_targets_need_deploy",
                violation_error_message="Deploy targets limit the deploy scope: give the token the deploy scope.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"

    @property
    def scope(self) -> TokenScope:
        return TokenScope(
            read=self.scope_read,
            write=self.scope_write,
            deploy=self.scope_deploy,
            admin=self.scope_admin,
            deploy_targets=tuple(self.deploy_targets.split(",")) if self.deploy_targets else (),
            model_pattern=self.model_pattern,
        )

    @staticmethod
    def scope_fields(scope: TokenScope) -> dict[str, object]:
        """The fields that store `scope`."""
        return {
            "scope_read": scope.read,
            "scope_write": scope.write,
            "scope_deploy": scope.deploy,
            "scope_admin": scope.admin,
            "deploy_targets": ",".join(scope.deploy_targets),
            "model_pattern": scope.model_pattern,
        }

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditEvent(PreparedInsertModel):
    """One write to the registry. Rows are only ever added: there is no API or admin path that changes
    or removes one, and nothing references the objects described, so events outlive them."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, db_index=True, help_text="Username, or 'anonymous' in local mode.")
    via = models.CharField(max_length=16, help_text="api, admin or command")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(
        max_length=64, blank=True, default="", db_index=True, help_text="The request's X-Request-ID."
    )
    action = models.CharField(max_length=32, db_index=True)
    object_type = models.CharField(max_length=32)
    object_repr = models.CharField(max_length=255, help_text="e.g. image_classifier:v1")
    model_name = models.CharField(max_length=128, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_events"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise PermissionError("Audit events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are never deleted.")


class FailureCounter(models.Model):
    """Failed sign-ins (bad API tokens per address, admin logins per address and per username) in the
    current one-minute window. A row rather than a cache entry: the check and the count happen under the
    row's lock (registry_site.throttling.take_attempt), so concurrent attempts cannot all read the same
    count, as they could through the database cache's incr (a read, then a write)."""

    key = models.CharField(max_length=200, unique=True)
    window_started = models.DateTimeField(db_index=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "registry_failure_counters"

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} since {self.window_started:%H:%M:%S}"


class IdempotencyKey(models.Model):
    """The answer to a POST sent with an `Idempotency-Key` header, replayed to its retries until it
    expires (registry_site.idempotency). Written in the transaction of the change it answers, so a
    change never exists without its recorded answer."""

    scope = models.CharField(
        max_length=64, unique=True, help_text="sha256 of who sent the key, the method, the path and the key."
    )
    owner = models.CharField(max_length=32, help_text="'user:<id>', or 'anonymous' in local mode.")
    method = models.CharField(max_length=8)
    path = models.TextField()
    key = models.CharField(max_length=255)
    request_digest = models.CharField(max_length=64, help_text="sha256 of the request's query and body.")
    status_code = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=255, blank=True, default="")
    headers = models.JSONField(default=dict, blank=True, help_text="The answer's own headers (Location...).")
    body = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "registry_idempotency_keys"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.key} ({self.owner})"


class WebhookSubscription(models.Model):
    """Where other systems want to hear about changes: a URL, the events it wants (or "*"), optionally
    only for models whose name matches a glob. Deliveries are signed with `secret` following the
    Standard Webhooks specification (registry_site.webhooks). A subscription that keeps failing is
    disabled by the delivery worker; enabling it again resumes what is still pending."""

    url = models.URLField(
        max_length=2000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where the events are POSTed (http or https).",
    )
    description = models.CharField(max_length=200, blank=True, default="")
    secret = models.CharField(
        max_length=200,
        validators=[validate_webhook_secret],
        help_text="whsec_ followed by the base64 of 24 to 64 random bytes (Standard Webhooks).",
    )
    events = models.JSONField(
        validators=[validate_webhook_events],
        help_text='Event types (e.g. ["version.created", "deployment.created"]) or ["*"].',
    )
    model_filter = models.CharField(
        max_length=128,
        blank=True,
        default="",
        validators=[model_pattern_validator],
        help_text="Only models whose name matches this glob (e.g. 'fraud-*').",
    )
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=255, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "registry_webhook_subscriptions"
        ordering = ["id"]
        verbose_name = "webhook subscription"

    def __str__(self) -> str:
        return f"#{self.pk} {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # a 2xx answered it
    FAILED = "failed"  # every attempt of the retry schedule failed


class WebhookDelivery(models.Model):
    """The outbox: one message for one subscription, written in the transaction of the change it
    reports (so it exists exactly when the change committed), then sent by `manage.py deliver_webhooks`
    until a 2xx answers it or the retry schedule is over. `message_id` is the webhook-id header, the
    same on every attempt, so receivers can drop duplicates; `body` is the exact JSON sent and signed."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=64)
    ordering_key = models.CharField(
        max_length=160, help_text="Deliveries with the same key (a model) go out one at a time, oldest first."
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker that claimed the delivery owns it until then; one that died mid-attempt loses it then.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "registry_webhook_deliveries"
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["subscription", "ordering_key", "status"], name="webhook_delivery_order"),
        ]

    # What the API's delivery log and the admin's page show of a delivery (the lease is the worker's).
    SHOWN_FIELDS = (
        "message_id",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "last_attempt_at",
        "delivered_at",
    )

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type} ({self.status})"


class WebhookAttempt(models.Model):
    """The delivery log: one row per attempt to send a delivery."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        db_table = "registry_webhook_attempts"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
