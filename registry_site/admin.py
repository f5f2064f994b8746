"""Admin pages for API tokens (created and revoked here or by `manage.py create_token`) and the
read-only audit trail."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from registry_site import webhooks
from registry_site.admin_base import (
    InputFilter,
    ReadOnlyAdminMixin,
    RegistryAdmin,
    ScaledChangelistMixin,
    adopt,
    prefix_match,
    search_any,
)
from registry_site.audit import client_address
from registry_site.authentication import issue_token, revoke_token
from registry_site.errors import RegistryError
from registry_site.models import ApiToken, AuditEvent, DeliveryStatus, WebhookDelivery, WebhookSubscription
from registry_site.throttling import give_back, take_attempt
from registry_site.validators import WEBHOOK_EVENT_TYPES

# The console's VIEW SITE link: the API's documentation (the registry has no other public page).
admin.site.site_url = "/docs"


class ThrottledLoginForm(AdminAuthenticationForm):
    """The admin's login, with a limit on failures: REGISTRY_LOGIN_FAILURES_PER_MINUTE per address and
    per username. An attempt is counted before its password is checked and given back when it
    succeeds, so concurrent guesses cannot slip past the count; over the limit, the password is not
    even checked (a right one included) until the minute is over."""

    def clean(self):
        username = (self.cleaned_data.get("username") or "").lower()
        keys = [f"login-failures:address:{client_address(self.request)}", f"login-failures:user:{username[:150]}"]
        taken: list[str] = []
        for key in keys:
            wait = take_attempt(key, settings.REGISTRY_LOGIN_FAILURES_PER_MINUTE)
            if wait is not None:
                for counted in taken:
                    give_back(counted)
                raise ValidationError(
                    f"Too many failed logins for this user or from this address. Try again in {wait} seconds.",
                    code="throttled",
                )
            taken.append(key)
        cleaned = super().clean()  # a wrong password raises here, and its attempt stays counted
        for counted in taken:
            give_back(counted)
        return cleaned


admin.site.login_form = ThrottledLoginForm


@admin.register(ApiToken)
class ApiTokenAdmin(ScaledChangelistMixin, admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scope_text", "created_at", "expires_at", "last_used_at", "state"]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    fields = [
        "user",
        "name",
        "expires_at",
        "scope_read",
        "scope_write",
        "scope_deploy",
        "deploy_targets",
        "scope_admin",
        "model_pattern",
    ]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]
    # An existing token shows what it is, not a form: its user, secret and scope never change.
    shown = ["user", "name", "prefix", "scope_text", "created_at", "expires_at", "last_used_at", "revoked_at"]

    @admin.display(description="scope")
    def scope_text(self, token: ApiToken) -> str:
        return str(token.scope)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at:
            return "revoked"
        return "active" if token.is_usable else "expired"

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return self.fields if obj is None else self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return self.readonly_fields if obj is None else self.shown

    def get_fieldsets(self, request: HttpRequest, obj: ApiToken | None = None):
        if obj is not None:
            return super().get_fieldsets(request, obj)
        return [
            (None, {"fields": self.fields[:3]}),
            (
                "Scope",
                {
                    "fields": self.fields[3:],
                    "description": "The token may do what both its scope and its user's roles allow, never more "
                    "than the roles: give roles on the user's page (or manage.py grant_role).",
                },
            ),
        ]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: ModelForm, change: bool) -> None:
        if change:
            return
        row, token = issue_token(user=obj.user, name=obj.name, scope=obj.scope, expires_at=obj.expires_at)
        obj.pk, obj.prefix, obj.digest, obj.created_at = row.pk, row.prefix, row.digest, row.created_at
        obj._state.adding = False
        self.message_user(
            request,
            format_html(
                "Token for {}: <code>{}</code> — copy it now, it is not stored and is shown only once.", row.user, token
            ),
            messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoke instead: the row records that the token existed

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.select_related("user"):
            revoke_token(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


class FixedValuesFilter(admin.SimpleListFilter):
    """The values an audit column can take, known in advance: Django's default filter lists a column's
    distinct values, a read of the whole table (a million events) on every page."""

    values: tuple[str, ...] = ()

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(value, value) for value in self.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class ViaFilter(FixedValuesFilter):
    title = "via"
    parameter_name = "via"
    values = ("api", "admin", "command")


class ObjectTypeFilter(FixedValuesFilter):
    title = "object type"
    parameter_name = "object_type"
    values = ("model", "version", "deployment", "target", "token", "webhook")


class ActionFilter(InputFilter):
    title = "action"
    parameter_name = "action"
    placeholder = "e.g. deploy"
    lookup = "action"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, ScaledChangelistMixin, admin.ModelAdmin):
    list_display = ["at", "actor", "via", "action", "object_repr", "client_address"]
    list_filter = [ActionFilter, ViaFilter, ObjectTypeFilter]
    search_fields = ["actor", "model_name"]
    search_help_text = "An actor's user name, an action, or a model name (or its start)."
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        # Each column searched has an index: exact actor or action, model name by prefix.
        term = search_term.strip()
        if not term:
            return queryset, False
        return search_any(
            queryset,
            (Q(actor=term), "-id"),
            (Q(action=term), "-id"),
            prefix_match("model_name", term, using=queryset.db),
        ), False


# --- Webhooks (registry_site.webhooks) --------------------------------------------------------------------
class WebhookSubscriptionForm(forms.ModelForm):
    """Events as checkboxes; the secret is never shown again: blank keeps it (or, for a new subscription,
    generates one, shown once after saving)."""

    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="Where the events are POSTed.")
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in ("*", *WEBHOOK_EVENT_TYPES)],
        widget=forms.CheckboxSelectMultiple,
        help_text='"*" is every event type, present and future.',
    )
    secret = forms.CharField(
        required=False,
        strip=True,
        help_text="Leave blank to generate one (new subscription) or keep the current one. "
        "Format: whsec_ and the base64 of 24 to 64 bytes.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "description", "events", "model_filter", "enabled", "secret"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["secret"] = ""

    def _post_clean(self) -> None:
        # The model's own rules run in the service (a blank secret here means "keep" or "generate").
        if not self.cleaned_data.get("secret"):
            self.cleaned_data.pop("secret", None)
            self.instance.secret = (
                WebhookSubscription.objects.filter(pk=self.instance.pk).values_list("secret", flat=True).first()
                or webhooks.new_secret()
            )
        super()._post_clean()


class DeliveryStatusFilter(FixedValuesFilter):
    title = "status"
    parameter_name = "status"
    values = tuple(DeliveryStatus.values)


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(RegistryAdmin):
    form = WebhookSubscriptionForm
    list_display = ["id", "url", "event_types", "model_filter", "enabled", "consecutive_failures", "disabled_reason"]
    list_filter = ["enabled"]
    search_fields = ["url"]
    ordering = ["id"]
    readonly_fields = ["consecutive_failures", "failing_since", "disabled_at", "disabled_reason", "deliveries_link"]

    @admin.display(description="events")
    def event_types(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    @admin.display(description="deliveries")
    def deliveries_link(self, subscription: WebhookSubscription) -> str:
        if subscription.pk is None:
            return "-"
        url = reverse("admin:registry_site_webhookdelivery_changelist") + f"?subscription__id__exact={subscription.pk}"
        return format_html('<a href="{}">The delivery log</a>', url)

    def save_model(self, request: HttpRequest, obj: WebhookSubscription, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        given = {f: data[f] for f in webhooks.EDITABLE_SUBSCRIPTION_FIELDS if f in data and data[f] is not None}
        if change:
            changes = {f: v for f, v in given.items() if f in form.changed_data}
            saved = webhooks.update_subscription(subscription=obj, changes=changes) if changes else obj
        else:
            saved = webhooks.create_subscription(**given)
            if not data.get("secret"):
                self.message_user(
                    request,
                    format_html("Signing secret: <code>{}</code> — copy it now, it is not shown again.", saved.secret),
                    messages.WARNING,
                )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        webhooks.delete_subscription(subscription=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            webhooks.delete_subscription(subscription=subscription)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ScaledChangelistMixin, admin.ModelAdmin):
    """The outbox and its log, read-only (every field is) but for the redeliver action, which needs
    change_webhookdelivery."""

    list_display = ["message_id", "subscription", "event_type", "status", "attempts", "created_at", "next_attempt_at"]
    list_filter = [DeliveryStatusFilter]
    list_select_related = ["subscription"]
    search_fields = ["message_id"]
    actions = ["redeliver"]
    fields = ["subscription", *WebhookDelivery.SHOWN_FIELDS, "payload", "attempt_log"]
    readonly_fields = fields

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        # Nothing here is edited (the change permission is the redeliver action's): no save buttons.
        extra = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="payload")
    def payload(self, delivery: WebhookDelivery) -> str:
        shown = json.dumps(json.loads(delivery.body), indent=2, ensure_ascii=False)
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', shown)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(message_id=term), False) if term else (queryset, False)

    @admin.display(description="attempts log")
    def attempt_log(self, delivery: WebhookDelivery) -> str:
        rows = delivery.attempt_log.order_by("-id")[:50]
        return (
            format_html_join(
                "\n",
                "<div>#{} {} — {} in {} ms {} <code>{}</code></div>",
                (
                    (a.number, a.at, a.status_code or "no answer", a.latency_ms, a.error, a.response_excerpt[:200])
                    for a in rows
                ),
            )
            or "-"
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Redeliver selected deliveries", permissions=["change"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done = 0
        for delivery in queryset:
            try:
                webhooks.redeliver(delivery=delivery)
                done += 1
            except RegistryError as exc:
                self.message_user(request, f"{delivery.message_id}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} deliveries will be sent again shortly.", messages.SUCCESS)
