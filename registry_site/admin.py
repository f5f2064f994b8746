"""Admin pages for API tokens (created and revoked here or by `manage.py create_token`) and the
read-only audit trail."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html

from registry_site.admin_base import InputFilter, ReadOnlyAdminMixin, ScaledChangelistMixin, prefix_match, search_any
from registry_site.audit import client_address
from registry_site.authentication import issue_token, revoke_token
from registry_site.models import ApiToken, AuditEvent
from registry_site.throttling import give_back, take_attempt

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
    values = ("model", "version", "deployment", "token")


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
