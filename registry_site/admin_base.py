"""What every page of the admin console shares: changes through the services, their refusals shown as
messages or form errors (never a 500), no COUNT(*) of a whole table per page, intermediate forms for
actions that need an answer, and the small display helpers (links, sizes, digests).

The apps' admin modules build on this one and never on each other's.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import quote
from django.db import models, router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from registry_site.errors import RegistryError

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


class RegistryAdmin(admin.ModelAdmin):
    """What the registry's ModelAdmins share: service errors as messages, no COUNT(*) of the whole table
    on every changelist, and intermediate form pages for actions that need an answer (target, reason)."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # per-filter-option counts are a COUNT(*) each
    # A service error's `field` may name something the admin form calls differently.
    service_error_fields: dict[str, str] = {}

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
        self, request: HttpRequest, *, action: str, objects: list, form: forms.Form, title: str, intro: str, submit: str
    ) -> TemplateResponse:
        context = {
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
