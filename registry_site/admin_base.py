"""What every page of the admin console shares: changes through the services, their refusals shown as
messages or form errors (never a 500), no COUNT(*) of a whole table per page, intermediate forms for
actions that need an answer, and the small display helpers (links, sizes, digests).

Scale (issue #15): a registry keeps every version it ever registered, so every page here is built to cost
the same with a million rows as with ten: lists count at most `CappedCountPaginator.cap` rows, search
matches what an index serves (exact or prefix, `prefix_match`), the sidebar's filters offer fixed choices
or a text box (`InputFilter`) instead of listing a column's distinct values, and pages show a bounded slice
of a related list with a link to the whole of it instead of an inline.

The apps' admin modules build on this one and never on each other's.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections, models, router, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _

from registry_site.errors import RegistryError
from registry_site.models import AuditEvent

ACTION_FORM_TEMPLATE = "admin/registry_action_form.html"


# --- Small display helpers ---------------------------------------------------------------------------
def admin_link(obj: models.Model, text: Any) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])
    return format_html('<a href="{}">{}</a>', url, text)


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    return format_html('<span title="{} bytes">{}</span>', size, filesizeformat(size))


def short_sha(sha256: str | None) -> str:
    if not sha256:
        return "-"
    return format_html('<code title="{}">{}</code>', sha256, sha256[:12])


def adopt(target: models.Model, saved: models.Model) -> None:
    """Copy a row a service saved onto the instance the admin holds, so the admin's log entry, message
    and redirect name the saved row."""
    for field in target._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


# --- Lists at any size --------------------------------------------------------------------------------
class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows (`SELECT COUNT(*) FROM (... LIMIT cap + 1)`), never a whole table: a
    changelist's count is a full scan on SQLite and PostgreSQL alike, seconds at a million rows. Past the
    cap the list shows `cap` rows' worth of pages, newest first, and says there are more (templates/admin/
    pagination.html); search or a filter narrows it. `estimate` is PostgreSQL's own row estimate of an
    unfiltered table (pg_class.reltuples, kept by ANALYZE/autovacuum), shown as "about N"."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        # values("pk"): the page's annotations (the model list's default version, a subquery per row)
        # are not worth computing for 10,000 rows that are only counted.
        return object_list.values("pk").order_by()[: self.cap + 1].count()

    @cached_property
    def capped(self) -> bool:
        return self.count > self.cap

    @cached_property
    def num_pages(self) -> int:
        if self.capped:
            return -(-self.cap // self.per_page)
        return super().num_pages

    def page(self, number):
        """A later page's rows by id: `OFFSET 9950` over the page's joins (the version list joins its
        model and file) builds 9,950 joined rows to skip them; over the ids alone it reads an index."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if bottom == 0 or not isinstance(self.object_list, QuerySet):
            return super().page(number)
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)

    @cached_property
    def estimate(self) -> int | None:
        object_list = self.object_list
        if not self.capped or not isinstance(object_list, QuerySet) or object_list.query.where:
            return None
        connection = connections[object_list.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(object_list.model._meta.db_table)],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] and row[0] > self.cap else None


def prefix_match(field: str, term: str, *, using: str = "default") -> Q:
    """`field` starts with `term` (case-sensitive), written so an index on `field` serves it. PostgreSQL
    serves `LIKE 'term%'` from a varchar_pattern_ops index (Django adds one to every unique or indexed
    varchar column; models_app's migration 0003 adds the rest). SQLite's LIKE ignores case and so cannot
    use an ordinary index, but a range over the column's binary order is the same match, and can."""
    if connections[using].vendor == "postgresql":
        return Q(**{f"{field}__startswith": term})
    return Q(**{f"{field}__gte": term, f"{field}__lt": term + "\U0010ffff"})


SEARCH_MATCHES_PER_KIND = 1000


def search_any(queryset: QuerySet, *conditions: Q | tuple[Q, str]) -> QuerySet:
    """Rows of `queryset` that meet any of `conditions`, each an indexed match (optionally with the
    order its index gives, e.g. "-id"). A single `WHERE a OR b OR c ORDER BY id DESC LIMIT 50` leaves
    the planner scanning the table backwards for matches, the whole of it when there are none; here
    each condition is its own query, which reads at most SEARCH_MATCHES_PER_KIND rows of its index, and
    the page is taken from the ids found (a fixed number of queries, each bounded)."""
    ids: set = set()
    for condition in conditions:
        match, order = condition if isinstance(condition, tuple) else (condition, None)
        found = queryset.filter(match)
        found = found.order_by(order) if order else found.order_by()
        ids.update(found.values_list("pk", flat=True)[:SEARCH_MATCHES_PER_KIND])
    return queryset.filter(pk__in=sorted(ids))


class InputFilter(admin.SimpleListFilter):
    """A sidebar filter with a text box instead of a list of values: listing a column's distinct values
    (Django's default for a field without choices) reads the whole table, and ten thousand models do not
    make a usable list anyway. Subclasses name the `lookup` the value is matched with (an indexed one)."""

    template = "admin/input_filter.html"
    lookup = ""
    placeholder = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.lookup or self.parameter_name: value}) if value else queryset

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> tuple:
        return ()

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        # The page's other parameters (filters, search, order) ride along as the box's hidden fields.
        hidden = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name != self.parameter_name
            for value in values
        ]
        yield {
            "value": self.value() or "",
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "hidden": hidden,
        }


class ScaledChangelistMixin:
    """What keeps a changelist's cost independent of its table's size: no total count ("N results (M
    total)"), no per-option counts in the filters, a capped count for the pages."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # per-filter-option counts are a COUNT(*) each
    paginator = CappedCountPaginator
    # Rendering, not the database, is most of a list's time (~2 ms a row of a dozen columns): 50 rows
    # keep a page well under 300 ms.
    list_per_page = 50

    def action_checkbox(self, obj: models.Model) -> str:
        # Django's own renders a CheckboxInput through the template engine for every row, a third of a
        # 100-row page's time; this is the same markup, written directly.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(_("Select this object for an action - {}"), str(obj)),
        )


# --- Pages that never write -------------------------------------------------------------------------
class ReadOnlyAdminMixin:
    """Shown, never written through the admin: history (deployments, audit events), stored files."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


# --- Writing through the services ---------------------------------------------------------------------
def _form_with_service_error(form_class: type[forms.BaseForm], error: RegistryError, aliases: dict[str, str]):
    class FormWithServiceError(form_class):
        def clean(self):
            cleaned = super().clean()
            for field, problems in (error.errors or {None: [error.message]}).items():
                field = aliases.get(field, field)
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
            return cleaned

    FormWithServiceError.__name__ = form_class.__name__
    return FormWithServiceError


@admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
def delete_selected_through_services(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """Django's own bulk delete (confirmation page included), all or nothing: delete_queryset calls a
    service per row, and one refusal rolls back the others and the log entries written for them."""
    try:
        with transaction.atomic(using=router.db_for_write(modeladmin.model)):
            return delete_selected(modeladmin, request, queryset)
    except RegistryError as exc:
        modeladmin.message_user(request, f"Nothing was deleted: {exc.message}", messages.ERROR)
        return None


HISTORY_EVENTS_SHOWN = 100


class RegistryAdmin(ScaledChangelistMixin, admin.ModelAdmin):
    """What the registry's ModelAdmins share: service errors as messages, no COUNT(*) of the whole table
    on every changelist, and intermediate form pages for actions that need an answer (target, reason)."""

    # A service error's `field` may name something the admin form calls differently.
    service_error_fields: dict[str, str] = {}

    def audit_events(self, obj: Any) -> QuerySet[AuditEvent]:
        """The audit events about `obj`, for its HISTORY page. Every change goes through the services,
        which write these (from the API, the admin and the commands alike), while Django's own history
        knows only what the admin did."""
        raise NotImplementedError

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        events = list(self.audit_events(obj).order_by("-id")[: HISTORY_EVENTS_SHOWN + 1])
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "events": events[:HISTORY_EVENTS_SHOWN],
            "more": len(events) > HISTORY_EVENTS_SHOWN,
            "all_events_url": reverse("admin:registry_site_auditevent_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/registry_history.html", context)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        if request.method == "POST":
            # Receive (and hash) an uploaded file now, before Django opens the form's transaction: on
            # SQLite that transaction holds the write lock, which must not wait on a client's upload.
            request.FILES  # noqa: B018  (reading it parses the body)
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RegistryError as exc:
            # The admin's transaction has been rolled back. Show the operator's form again, with their
            # input and the service's reason next to the field it names.
            request._registry_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: models.Model | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, "_registry_error", None)
        if error is not None:
            form = _form_with_service_error(form, error, self.service_error_fields)
        return form

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            opts = self.opts
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(object_id)])
            )

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (delete_selected_through_services, name, description)
        return actions

    def render_action_form(
        self,
        request: HttpRequest,
        *,
        action: str,
        objects: list,
        form: forms.Form,
        title: str,
        intro: str,
        submit: str,
        extra_context: dict | None = None,
    ) -> TemplateResponse:
        """`extra_context` may add `evaluations` (a list of {"label", "allowed", "checks", "error"}: rules a
        service evaluated, shown before the button) and `check_label` (a button that evaluates them again;
        an empty `submit` shows only that one)."""
        context = {
            **(extra_context or {}),
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "intro": intro,
            "opts": self.opts,
            "objects": objects,
            "form": form,
            "action": action,
            "submit_label": submit,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)
