"""The admin console for ML engineers: models, their versions and the stored files they point to.

Every change goes through the services the API calls (models_app.services, deployments_app.services), so
no rule is re-implemented here and a refusal reads the same in the console as in the API; the shared
machinery (service errors as messages or form errors, never a 500) is registry_site.admin_base, the
forms are models_app.forms.
"""

from __future__ import annotations

import re
from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from deployments_app import services as deployment_services
from deployments_app.models import Approval, Deployment, DeploymentStatus
from models_app import comparison, metric_charts, metric_history, selectors, services
from models_app.forms import ApproveForm, DeployForm, ModelVersionForm
from models_app.models import Artifact, ModelVersion, RegisteredModel, VersionStatus
from models_app.uploads import safe_file_name
from registry_site import charts
from registry_site.admin_base import (
    SEARCH_MATCHES_PER_KIND,
    InputFilter,
    ReadOnlyAdminMixin,
    RegistryAdmin,
    ScaledChangelistMixin,
    admin_link,
    adopt,
    human_size,
    prefix_match,
    search_any,
    short_sha,
)
from registry_site.errors import RegistryError
from registry_site.forms import StrictJSONField
from registry_site.markdown import render_markdown
from registry_site.models import AuditEvent
from registry_site.permissions import allows, permission_for

# --- Slices instead of inlines ------------------------------------------------------------------------
# A model can have a million versions and a version many deployments: a page shows the newest few as a
# small read-only table, and links to the list that has them all (filtered, paged, searchable).
LATEST_VERSIONS_SHOWN = 10
DEPLOYMENTS_SHOWN = 10
ACTIVE_TARGETS_SHOWN = 50

SHA256_PREFIX = re.compile(r"^[0-9a-f]{4,64}$")


def _table(headers: tuple[str, ...], rows: list[tuple], more: str = "") -> str:
    if not rows:
        return format_html("<p>None.</p>{}", more)
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html(
        '<table class="registry-slice"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}', head, body, more
    )


METRICS_LISTED = 3  # in a row of the version list
POINTS_LISTED = 10  # the latest points on a version's page
CHART_METRIC_PARAMETER = "chart_metric"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class ModelNameFilter(InputFilter):
    """Versions of the model named exactly so (the unique index on the name serves it)."""

    title = "model name"
    parameter_name = "model_name"
    placeholder = "exact name"
    lookup = "model__name"


@admin.register(RegisteredModel)
class RegisteredModelAdmin(RegistryAdmin):
    formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}
    list_display = ("name", "model_type", "default_version", "is_active", "updated_at")
    list_filter = ("model_type", "is_active")
    search_fields = ("name",)
    search_help_text = "Model name, or the start of it (case-sensitive)."

    def get_queryset(self, request: HttpRequest) -> QuerySet[RegisteredModel]:
        default_pk = ModelVersion.objects.filter(model=OuterRef("pk"), is_default=True).values("pk")[:1]
        return selectors.models_with_default().annotate(default_version_pk=Subquery(default_pk))

    def get_fieldsets(self, request: HttpRequest, obj: RegisteredModel | None = None) -> list:
        if obj is None:
            return [
                (None, {"fields": ("name", "model_type", "description", "is_active")}),
                ("Model card", {"fields": ("readme",)}),
                ("Comparison", {"fields": ("metric_directions",)}),
            ]
        return [
            (None, {"fields": ("name", "model_type", "description", "is_active")}),
            ("Model card", {"fields": ("model_card", "readme")}),
            ("Comparison", {"fields": ("metric_directions",)}),
            ("Versions", {"fields": ("default_version", "active_deployments", "latest_versions", "all_versions")}),
            ("A metric across versions", {"fields": ("metric_across_versions",)}),
            ("Timestamps", {"fields": ("created_at", "updated_at")}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: RegisteredModel | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A model's name never changes: it is in every URL and client that refers to the model.
        return (
            "name",
            "model_card",
            "default_version",
            "active_deployments",
            "latest_versions",
            "all_versions",
            "metric_across_versions",
            "created_at",
            "updated_at",
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        model = super().get_object(request, object_id, from_field)
        if model is not None:
            # The chart's metric, chosen by a link on the page (?chart_metric=): read-only fields see only the object.
            model.chart_metric = request.GET.get(CHART_METRIC_PARAMETER, "")
        return model

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RegisteredModel], search_term: str
    ) -> tuple[QuerySet[RegisteredModel], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(prefix_match("name", term, using=queryset.db)), False

    @admin.display(description="model card")
    def model_card(self, model: RegisteredModel) -> str:
        """The README as the reader sees it: Markdown rendered and sanitized (registry_site.markdown)."""
        if not model.readme:
            return "-"
        return format_html('<div class="registry-markdown">{}</div>', render_markdown(model.readme))

    @admin.display(description="default version", ordering="default_version")
    def default_version(self, model: RegisteredModel) -> str:
        if getattr(model, "default_version_pk", None) is None:
            return "-"
        url = reverse("admin:models_app_modelversion_change", args=[model.default_version_pk])
        return format_html('<a href="{}">{}</a>', url, model.default_version)

    @admin.display(description="deployed")
    def active_deployments(self, model: RegisteredModel) -> str:
        active = list(
            Deployment.objects.filter(model=model, deployment_status=DeploymentStatus.ACTIVE)
            .select_related("model_version")
            .order_by("deployment_target")[: ACTIVE_TARGETS_SHOWN + 1]
        )
        url = reverse("admin:deployments_app_deployment_changelist")
        more = format_html(
            '<p><a href="{}?model__id__exact={}">All deployments of {}</a></p>', url, model.pk, model.name
        )
        rows = [
            (d.deployment_target_id, admin_link(d.model_version, d.model_version.version), d.deployed_at, d.deployed_by)
            for d in active[:ACTIVE_TARGETS_SHOWN]
        ]
        return _table(("target", "version", "deployed at", "by"), rows, more)

    @admin.display(description=f"latest {LATEST_VERSIONS_SHOWN} versions")
    def latest_versions(self, model: RegisteredModel) -> str:
        """The latest versions with every metric any of them has (the seed's five and the named ones)."""
        latest = list(selectors.versions_of(model.name).order_by("-id")[:LATEST_VERSIONS_SHOWN])
        metrics = [comparison.metrics_of(v) for v in latest]
        names = sorted({name for values in metrics for name in values}, key=comparison.metric_order)
        rows = [
            (
                admin_link(v, v.version),
                v.format,
                v.status,
                "yes" if v.is_default else "",
                *(_number(values.get(name)) for name in names),
                human_size(v.file_size),
                short_sha(v.checksum),
                v.created_at,
            )
            for v, values in zip(latest, metrics, strict=True)
        ]
        headers = ("version", "format", "status", "default", *names, "size", "sha256", "created")
        compare = ""
        if len(latest) >= comparison.MIN_VERSIONS:
            refs = ",".join(f"{model.name}:{v.version}" for v in reversed(latest))
            url = reverse("admin:models_app_modelversion_compare")
            compare = format_html('<p><a href="{}?versions={}">Compare these versions</a></p>', url, refs)
        return _table(headers, rows, compare)

    @admin.display(description="chart")
    def metric_across_versions(self, model: RegisteredModel) -> str:
        """A metric (the one chosen by ?chart_metric=, else the first of the seed's five with values) across
        the latest versions, oldest first; the other metrics as links."""
        versions, names = metric_charts.chartable_metrics(model)
        if not names:
            return charts.no_data(f"Metrics of {model.name}", "no version has a metric yet.")
        chosen = getattr(model, "chart_metric", "")
        metric = chosen if chosen in names else metric_charts.default_metric(names)
        choices = format_html_join(
            " · ",
            "{}",
            (
                (
                    format_html('<strong aria-current="true">{}</strong>', name)
                    if name == metric
                    else format_html('<a href="?{}">{}</a>', urlencode({CHART_METRIC_PARAMETER: name}), name),
                )
                for name in names
            ),
        )
        return format_html(
            '<p class="registry-chart-choices">Metric: {}</p><div class="registry-chart-box">{}</div>',
            choices,
            metric_charts.across_versions_chart(model, versions, metric),
        )

    @admin.display(description="all versions")
    def all_versions(self, model: RegisteredModel) -> str:
        url = reverse("admin:models_app_modelversion_changelist")
        return format_html('<a href="{}?model__id__exact={}">All versions of {}</a>', url, model.pk, model.name)

    def audit_events(self, obj: RegisteredModel) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(model_name=obj.name)  # the model's, its versions' and deployments'

    def save_model(self, request: HttpRequest, obj: RegisteredModel, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {field: data[field] for field in form.changed_data if field in services.EDITABLE_MODEL_FIELDS}
            if changes:
                adopt(obj, services.update_model(model=obj, changes=changes))
            return
        adopt(
            obj,
            services.create_model(
                name=data["name"],
                model_type=data["model_type"],
                description=data.get("description", ""),
                is_active=data.get("is_active", True),
                readme=data.get("readme", ""),
                metric_directions=data.get("metric_directions") or {},
            ),
        )

    def delete_model(self, request: HttpRequest, obj: RegisteredModel) -> None:
        services.delete_model(model=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RegisteredModel]) -> None:
        for model in queryset:
            services.delete_model(model=model)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Deployment history is read-only in the admin, yet a model's deletion takes it along; whether
        # the model may go (no active deployment) is services.delete_model's call, not a permission.
        perms_needed.discard(Deployment._meta.verbose_name)
        return deleted, counts, perms_needed, protected


# --- Versions -----------------------------------------------------------------------------------------
def _difference_text(difference: dict) -> dict | None:
    """A metric's difference from the baseline as the comparison page shows it: (+0.02, +2.2%)."""
    if difference["absolute"] is None:
        return None
    relative = "" if difference["relative"] is None else f", {difference['relative']:+.1%}"
    return {"text": f"({difference['absolute']:+.6g}{relative})", "better": difference["better"]}


@admin.register(ModelVersion)
class ModelVersionAdmin(RegistryAdmin):
    form = ModelVersionForm
    list_display = (
        "version",
        "model_link",
        "status",
        "default",
        "accuracy",
        "other_metrics",
        "file_size",
        "deployed_to",
        "created",
    )
    list_display_links = ("version",)
    list_filter = (ModelNameFilter, "status", "format", "is_default", "format_check", "model__model_type")
    list_select_related = ("model", "artifact")
    search_fields = ("model__name", "version")
    search_help_text = (
        "A model name or version, or the start of one; name:version; or the start of a sha256 (4+ hex digits)."
    )
    autocomplete_fields = ("model",)
    actions = ["compare", "make_default", "deploy_to_target", "approve_for_target", "archive"]
    service_error_fields = {"is_default": "make_default"}

    def get_urls(self) -> list:
        compare = self.admin_site.admin_view(self.comparison_view)
        return [path("compare/", compare, name="models_app_modelversion_compare"), *super().get_urls()]

    @admin.action(description="Compare selected versions", permissions=["view"])
    def compare(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        versions = list(
            queryset.select_related("model").order_by("model__name", "created_at", "id")[: comparison.MAX_VERSIONS + 1]
        )
        if not comparison.MIN_VERSIONS <= len(versions) <= comparison.MAX_VERSIONS:
            self.message_user(
                request,
                f"Select {comparison.MIN_VERSIONS} to {comparison.MAX_VERSIONS} versions to compare them.",
                messages.ERROR,
            )
            return None
        refs = ",".join(f"{v.model.name}:{v.version}" for v in versions)
        return HttpResponseRedirect(f"{reverse('admin:models_app_modelversion_compare')}?versions={refs}")

    def comparison_view(self, request: HttpRequest) -> HttpResponse:
        """The versions side by side (the API's GET /compare), the best value of each metric marked."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        refs = [ref.strip() for ref in request.GET.get("versions", "").split(",")]
        try:
            result = comparison.compare(comparison.resolve_across_models(refs))
        except RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:models_app_modelversion_changelist"))
        asked = [entry["asked"] for entry in result["versions"]]
        rows = [
            {
                "name": row["name"],
                "direction": row["direction"],
                "cells": [
                    {
                        "value": _number(row["values"][ref]),
                        "best": ref in row["best"] and len(row["best"]) < len(asked),
                        "difference": None if i == 0 else _difference_text(row["differences"][i - 1]),
                    }
                    for i, ref in enumerate(asked)
                ],
            }
            for row in result["metrics"]
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare versions",
            "comparison": result,
            "metric_rows": rows,
            "others": list(zip(result["compatibility"], result["training_config"], strict=True)),
            "chart": charts.grouped_bar_chart(
                title="Compared metrics, each on its own scale",
                groups=[row["name"] for row in result["metrics"]],
                series=[charts.BarSeries(ref, [row["values"][ref] for row in result["metrics"]]) for ref in asked],
                best=[
                    [i for i, ref in enumerate(asked) if ref in row["best"] and len(row["best"]) < len(asked)]
                    for row in result["metrics"]
                ],
                description="A bar per version; a star marks the best value of each metric by its direction.",
            ),
        }
        return TemplateResponse(request, "admin/models_app/compare.html", context)

    def audit_events(self, obj: ModelVersion) -> QuerySet[AuditEvent]:
        label = f"{obj.model.name}:{obj.version}"
        return AuditEvent.objects.filter(model_name=obj.model.name).filter(
            Q(object_type="version", object_repr=label)
            | Q(object_type="deployment", object_repr__startswith=f"{label} -> ")
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        # Files and active targets come with the page: a fixed number of queries however many rows.
        queryset = selectors.versions_with_files_and_targets()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_fieldsets(self, request: HttpRequest, obj: ModelVersion | None = None) -> list:
        metrics = ("Metrics", {"fields": (("accuracy", "precision", "recall", "f1_score", "mAP"), "metrics")})
        lineage = (
            "Tags and lineage",
            {"fields": ("tags", ("training_run", "code_commit"), ("dataset_name", "dataset_version"))},
        )
        shapes = (
            "Shapes and configuration",
            {"fields": ("input_shape", "output_shape", "training_config", "deployment_config")},
        )
        notes = ("Release notes", {"fields": ("release_notes",)})
        if obj is None:
            return [
                (None, {"fields": ("model", "version", "format", "status", "make_default")}),
                ("File", {"fields": ("file", "sha256")}),
                metrics,
                lineage,
                shapes,
                notes,
            ]
        default_field = "is_default" if obj.is_default else "make_default"
        file_fields = (
            ("file_name", "checksum_full", "file_size_exact", "file_path", "format_check_result", "download")
            if obj.artifact_id
            else ("file", "sha256")
        )
        return [
            (None, {"fields": ("model_link", "version", "format", "status", default_field, "deployed_to")}),
            ("Deployments", {"fields": ("recent_deployments",)}),
            ("Metric history", {"fields": ("metric_charts", "metric_history")}),
            ("File", {"fields": file_fields}),
            metrics,
            lineage,
            shapes,
            ("Release notes", {"fields": ("release_notes", "release_notes_rendered")}),
            ("Timestamps", {"fields": ("created_at", "updated_at")}),
        ]

    def get_form(self, request: HttpRequest, obj: ModelVersion | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        # The form declares fields for every situation (file and expected sha256, make default); drop the
        # ones this page does not show, so a crafted POST cannot reach them either.
        shown = set(flatten_fieldsets(self.get_fieldsets(request, obj)))
        unused = [name for name in ModelVersionForm.FORM_ONLY_FIELDS if name not in shown]
        return type(form.__name__, (form,), dict.fromkeys(unused)) if unused else form

    def get_readonly_fields(self, request: HttpRequest, obj: ModelVersion | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # The version string, its model and its file never change once registered.
        return (
            "model_link",
            "version",
            "is_default",
            "deployed_to",
            "recent_deployments",
            "metric_charts",
            "metric_history",
            "file_name",
            "checksum_full",
            "file_size_exact",
            "file_path",
            "format_check_result",
            "download",
            "release_notes_rendered",
            "created_at",
            "updated_at",
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion], search_term: str
    ) -> tuple[QuerySet[ModelVersion], bool]:
        """Only what an index serves: Django's default (`icontains` on every field, OR-ed over a join)
        reads all versions, a second per search at a million."""
        term = search_term.strip()
        if not term:
            return queryset, False
        using = queryset.db
        if ":" in term:
            name, _, version = term.partition(":")
            return search_any(queryset, Q(model__name=name) & prefix_match("version", version, using=using)), False
        # The models first, as a list: given `model_id IN (SELECT ...)`, PostgreSQL may walk all versions
        # backwards looking for one, the whole table when no model's name matches.
        named = RegisteredModel.objects.using(using).filter(prefix_match("name", term, using=using))
        model_ids = list(named.values_list("pk", flat=True)[:SEARCH_MATCHES_PER_KIND])
        conditions: list = [prefix_match("version", term, using=using)]
        if model_ids:
            conditions.append((Q(model_id__in=model_ids), "-id"))
        if SHA256_PREFIX.match(term):
            conditions.append(prefix_match("artifact__sha256", term, using=using))
        return search_any(queryset, *conditions), False

    # Columns and read-only fields.
    @admin.display(description="format check")
    def format_check_result(self, version: ModelVersion) -> str:
        if not version.format_check:
            return "-"
        return f"{version.format_check}: {version.format_check_detail}"

    @admin.display(description="model", ordering="model__name")
    def model_link(self, version: ModelVersion) -> str:
        return admin_link(version.model, version.model.name)

    @admin.display(description="file size", ordering="artifact__size")
    def file_size(self, version: ModelVersion) -> str:
        return human_size(version.file_size)

    @admin.display(description="created", ordering="created_at")
    def created(self, version: ModelVersion) -> str:
        return f"{timezone.localtime(version.created_at):%Y-%m-%d}"

    @admin.display(description="default", boolean=True, ordering="is_default")
    def default(self, version: ModelVersion) -> bool:
        return version.is_default

    @admin.display(description="other metrics")
    def other_metrics(self, version: ModelVersion) -> str:
        """The seed's other four and the named metrics, the first few: the list fits a 1400 px window."""
        values = [(n, v) for n, v in comparison.metrics_of(version).items() if n != "accuracy"]
        shown = ", ".join(f"{name} {_number(value)}" for name, value in values[:METRICS_LISTED])
        more = f" (+{len(values) - METRICS_LISTED} more)" if len(values) > METRICS_LISTED else ""
        return shown + more if values else "-"

    @admin.display(description="deployed to")
    def deployed_to(self, version: ModelVersion) -> str:
        """The targets it is active on, then the A/B tests' splits it takes part in ("staging: 10% in
        A/B test #3")."""
        splits = [
            f"{s['target']}: {s['weight'] / 100:g}% in A/B test #{s['experiment']}"
            + (" (paused)" if s["state"] == "paused" else "")
            for s in selectors.experiment_splits(version)
        ]
        return ", ".join([*selectors.deployed_targets(version), *splits]) or "-"

    @admin.display(description=f"latest {DEPLOYMENTS_SHOWN} deployments")
    def recent_deployments(self, version: ModelVersion) -> str:
        recent = Deployment.objects.filter(model_version=version).order_by("-deployed_at", "-id")
        url = reverse("admin:deployments_app_deployment_changelist")
        more = format_html(
            '<p><a href="{}?model_version__id__exact={}">All deployments of {}</a></p>', url, version.pk, version
        )
        rows = [
            (
                admin_link(d, f"#{d.pk}"),
                d.deployment_target_id,
                d.deployment_status,
                d.deployed_at,
                d.deployed_by,
                d.rollback_at or "-",
                d.rollback_reason,
            )
            for d in recent[:DEPLOYMENTS_SHOWN]
        ]
        return _table(("deployment", "target", "status", "deployed at", "by", "rolled back", "reason"), rows, more)

    @admin.display(description="charts")
    def metric_charts(self, version: ModelVersion) -> str:
        """Each metric's history, a line per source, with the version's deploys and rollbacks marked."""
        drawn = metric_charts.version_history_charts(version)
        if not drawn.charts:
            return charts.no_data(f"Metric history of {version}", "no point recorded yet.")
        return format_html(
            '<p class="registry-chart-note">{}</p>{}',
            drawn.note,
            format_html_join("", '<div class="registry-chart-box">{}</div>', ((chart,) for chart in drawn.charts)),
        )

    @admin.display(description=f"latest {POINTS_LISTED} points")
    def metric_history(self, version: ModelVersion) -> str:
        """The newest points (an index read, however many there are; no count of them all)."""
        latest = metric_history.points_of(version).order_by("-timestamp", "-id")[:POINTS_LISTED]
        rows = [
            (
                p.name,
                p.source,
                _number(p.value),
                "-" if p.step is None else p.step,
                f"{p.timestamp:%Y-%m-%d %H:%M:%S} UTC",
            )
            for p in latest
        ]
        kwargs = {"name": version.model.name, "version": version.version}
        more = format_html(
            '<p><a href="{}">All points (API)</a> · <a href="{}">Daily averages (API)</a></p>',
            reverse("version-metrics", kwargs=kwargs),
            reverse("version-metrics-summary", kwargs=kwargs),
        )
        return _table(("metric", "source", "value", "step", "at"), rows, more if rows else "")

    @admin.display(description="rendered")
    def release_notes_rendered(self, version: ModelVersion) -> str:
        if not version.release_notes:
            return "-"
        return format_html('<div class="registry-markdown">{}</div>', render_markdown(version.release_notes))

    @admin.display(description="checksum (sha256)")
    def checksum_full(self, version: ModelVersion) -> str:
        return format_html("<code>{}</code>", version.checksum) if version.checksum else "-"

    @admin.display(description="file size")
    def file_size_exact(self, version: ModelVersion) -> str:
        if version.file_size is None:
            return "-"
        return f"{filesizeformat(version.file_size)} ({version.file_size} bytes)"

    @admin.display(description="storage key")
    def file_path(self, version: ModelVersion) -> str:
        return version.file_path or "-"

    @admin.display(description="download")
    def download(self, version: ModelVersion) -> str:
        url = reverse("version-file", kwargs={"name": version.model.name, "version": version.version})
        return format_html('<a href="{}">{}</a>', url, version.file_name or "file")

    # Saving and deleting through the services.
    def save_model(self, request: HttpRequest, obj: ModelVersion, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        upload = data.get("file")
        if upload is not None:
            upload.name = safe_file_name(upload.name)
        declared = data.get("sha256") or None
        if not change:
            fields = {f: data[f] for f in services.EDITABLE_VERSION_FIELDS if f in data and f != "format"}
            fields.update({name: data[name] for name in services.EDITABLE_VERSION_MAPS if data.get(name)})
            saved = services.register_version(
                model=data["model"],
                version=data["version"],
                format=data["format"],
                upload=upload,
                declared_sha256=declared,
                make_default=data.get("make_default", False),
                **fields,
            ).version
        else:
            changes = {f: data[f] for f in form.changed_data if f in services.EDITABLE_VERSION_FIELDS}
            changes.update(form.metadata_changes())
            if data.get("make_default"):
                changes["is_default"] = True
            saved = services.update_version(version=obj, changes=changes) if changes else obj
            if upload is not None:
                saved = services.attach_file(version=saved, upload=upload, declared_sha256=declared)
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: ModelVersion) -> None:
        services.delete_version(version=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            services.delete_version(version=version)

    # Actions.
    def has_deploy_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Deployment, "add"))

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Approval, "add"))

    @admin.action(description="Approve for a target…", permissions=["approve"])
    def approve_for_target(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        versions = list(queryset.select_related("model"))
        form = ApproveForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return self.render_action_form(
                request,
                action="approve_for_target",
                objects=versions,
                form=form,
                title="Approve for a target",
                intro="You approve each version below for the target: a promotion policy that asks for "
                "approvals counts yours when someone else deploys it.",
                submit="Approve",
            )
        target, comment = form.cleaned_data["target"], form.cleaned_data["comment"]
        for version in versions:
            try:
                deployment_services.approve_version(
                    version=version, target=target, approver=request.user, comment=comment
                )
            except RegistryError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"Approved {version} for {target}.", messages.SUCCESS)
        return None

    @admin.action(description="Make default (select one version)", permissions=["change"])
    def make_default(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        versions = list(queryset.select_related("model")[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to make it its model's default.", messages.ERROR)
            return
        version = versions[0]
        previous = (
            ModelVersion.objects.filter(model_id=version.model_id, is_default=True)
            .exclude(pk=version.pk)
            .values_list("version", flat=True)
            .first()
        )
        try:
            services.set_default_version(version=version)
        except RegistryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.log_change(request, version, "Made the default version.")
        replaced = f" (instead of {previous})" if previous else ""
        self.message_user(
            request, f"Made {version} the default version of {version.model.name}{replaced}.", messages.SUCCESS
        )

    @admin.action(description="Archive selected versions", permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        archived = []
        for version in queryset.select_related("model"):
            if version.status == VersionStatus.ARCHIVED:
                continue
            try:
                services.update_version(version=version, changes={"status": VersionStatus.ARCHIVED})
            except RegistryError as exc:
                self.message_user(request, f"{version.model.name}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, version, "Archived.")
            archived.append(str(version))
        if archived:
            self.message_user(request, f"Archived {', '.join(archived)}.", messages.SUCCESS)

    def _deploy_check(self, request: HttpRequest, version: ModelVersion, target: str) -> dict:
        label = f"{version} → {target}"
        try:
            check = deployment_services.check_deploy(version=version, target=target, acting_user=request.user)
        except RegistryError as exc:
            return {"label": label, "allowed": False, "checks": [], "error": exc.message}
        if check.already_active:
            label += " (already active there: nothing would change)"
        return {"label": label, "allowed": check.allowed, "checks": [c.as_dict() for c in check.checks], "error": ""}

    @admin.action(description="Deploy to target…", permissions=["deploy"])
    def deploy_to_target(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        versions = list(queryset.select_related("model"))
        per_model = Counter(version.model.name for version in versions)
        repeated = sorted(name for name, count in per_model.items() if count > 1)
        if repeated:
            self.message_user(
                request,
                f"Select at most one version per model: a target runs one version of a model "
                f"({', '.join(repeated)} selected more than once).",
                messages.ERROR,
            )
            return None
        bound = "apply" in request.POST or "check" in request.POST
        form = DeployForm(request.POST if bound else None)
        page = {
            "request": request,
            "action": "deploy_to_target",
            "objects": versions,
            "form": form,
            "title": "Deploy to a target",
            "intro": "Each version below becomes its model's active deployment on the target; whatever "
            "was active there is superseded and can be restored by rolling back. The target's promotion "
            "policies are checked first.",
        }
        if not form.is_bound or not form.is_valid():
            return self.render_action_form(**page, submit="", extra_context={"check_label": "Check policies"})
        if "check" in request.POST:
            # The checks before the button: what deploy_version will evaluate, for each version.
            evaluations = [self._deploy_check(request, version, form.cleaned_data["target"]) for version in versions]
            return self.render_action_form(
                **page,
                submit="Deploy",
                extra_context={"check_label": "Check again", "evaluations": evaluations},
            )
        target = form.cleaned_data["target"]
        for version in versions:
            try:
                result = deployment_services.deploy_version(
                    version=version, target=target, acting_user=request.user, deployed_by=request.user.get_username()
                )
            except RegistryError as exc:
                self.message_user(request, f"{version.model.name}: {exc.message}", messages.ERROR)
                continue
            where = result.deployment.deployment_target_id
            if result.created:
                self.message_user(
                    request, f"Deployed {version} to {where} (deployment #{result.deployment.pk}).", messages.SUCCESS
                )
            else:
                self.message_user(request, f"{version} is already active on {where}; nothing changed.", messages.INFO)
        return None


# --- Stored files -------------------------------------------------------------------------------------
@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdminMixin, ScaledChangelistMixin, admin.ModelAdmin):
    """The stored files, read-only: they are written by registering a version and removed by gc_artifacts."""

    list_display = ("sha256", "file_size", "storage_key", "created_at")
    search_fields = ("sha256", "storage_key")
    search_help_text = "The start of a sha256 (4+ hex digits), or a storage key."
    readonly_fields = ("sha256", "size", "storage_key", "created_at")
    ordering = ("-created_at",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Artifact], search_term: str
    ) -> tuple[QuerySet[Artifact], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        conditions = [Q(storage_key=term)]
        if SHA256_PREFIX.match(term):
            conditions.append(prefix_match("sha256", term, using=queryset.db))
        return search_any(queryset, *conditions), False

    @admin.display(description="size", ordering="size")
    def file_size(self, artifact: Artifact) -> str:
        return human_size(artifact.size)
