"""The admin console's deployment history: read-only, since it is written only by deploying a version
(the versions' "Deploy to target…" action, POST /deploy) and by rolling back, which the "Roll back" action
here does through the same service as POST /deployments/{id}/rollback.

And the targets: made, changed and deleted through the same services as /targets; their promotion
policies, set through the same service as PUT /targets/{t}/policy; the approvals, read-only here (a
version's "Approve for a target…" action records them, as POST .../approvals does); and the A/B tests,
moved through their life by actions that call deployments_app.experiments; the alert rules, kept through
deployments_app.alerts, and their alerts, read-only but for the "Acknowledge" action."""

from __future__ import annotations

from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from deployments_app import alerts, experiment_charts, experiments, services
from deployments_app.forms import (
    PERCENT_HELP,
    ConcludeForm,
    ExperimentForm,
    RollbackForm,
    VariantFormSet,
    WeightsForm,
    basis_points,
)
from deployments_app.models import (
    MAX_VARIANTS,
    Alert,
    AlertRule,
    Approval,
    Deployment,
    Experiment,
    PromotionPolicy,
    Target,
)
from models_app import selectors as model_selectors
from models_app.models import RegisteredModel
from registry_site.admin_base import (
    InputFilter,
    ReadOnlyAdminMixin,
    RegistryAdmin,
    admin_link,
    adopt,
    prefix_match,
)
from registry_site.errors import InvalidInput, NotFound, PolicyRefused, RegistryError
from registry_site.models import AuditEvent
from registry_site.permissions import allows, permission_for


class TargetFilter(InputFilter):
    """A text box: listing the targets is a DISTINCT over the whole deployment history."""

    title = "target"
    parameter_name = "target"
    placeholder = "e.g. production"
    lookup = "deployment_target"


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdminMixin, RegistryAdmin):
    list_display = (
        "id",
        "model_link",
        "version_link",
        "target",
        "deployment_status",
        "deployed_at",
        "deployed_by",
        "rollback_at",
    )
    list_display_links = ("id",)
    list_filter = ("deployment_status", TargetFilter)
    # The row's checkbox is labelled with str(deployment), which names the version's model.
    list_select_related = ("model", "model_version__model")
    search_fields = ("model__name", "model_version__version", "deployment_target__name", "deployed_by")
    search_help_text = "A model name (or its start), a version, a target, or who deployed."
    ordering = ("-deployed_at", "-id")
    actions = ["roll_back"]

    def audit_events(self, obj: Deployment) -> QuerySet[AuditEvent]:
        """Its deploy and rollback, and the deploys and rollbacks that superseded or restored it."""
        mentions = Q(changes__deployment=obj.pk) | Q(changes__superseded=obj.pk) | Q(changes__restored=obj.pk)
        return AuditEvent.objects.filter(model_name=obj.model.name, object_type="deployment").filter(mentions)

    fields = (
        "model_link",
        "version_link",
        "target",
        "deployment_status",
        "deployed_at",
        "deployed_by",
        "deployment_config",
        "rollback_at",
        "rollback_reason",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Deployment], search_term: str
    ) -> tuple[QuerySet[Deployment], bool]:
        # Exact or prefix matches that the indexes serve, not Django's `icontains` over four columns.
        term = search_term.strip()
        if not term:
            return queryset, False
        using = queryset.db
        models_named = RegisteredModel.objects.filter(prefix_match("name", term, using=using)).values("pk")
        match = (
            Q(model__in=models_named) | Q(model_version__version=term) | Q(deployment_target=term) | Q(deployed_by=term)
        )
        return queryset.filter(match), False

    @admin.display(description="target", ordering="deployment_target")
    def target(self, deployment: Deployment) -> str:
        return deployment.deployment_target_id  # the name, without a query for the target's row

    @admin.display(description="model", ordering="model__name")
    def model_link(self, deployment: Deployment) -> str:
        return admin_link(deployment.model, deployment.model.name)

    @admin.display(description="version", ordering="model_version__version")
    def version_link(self, deployment: Deployment) -> str:
        return admin_link(deployment.model_version, deployment.model_version.version)

    # History is not edited by hand: no add, change or delete here. Deleting a model still takes its
    # history along (models_app.admin.RegisteredModelAdmin.get_deleted_objects).
    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Deployment, "rollback"))

    @admin.action(description="Roll back…", permissions=["rollback"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> HttpResponse | None:
        deployments = list(queryset.select_related("model", "model_version").order_by("-deployed_at", "-id"))
        # Rolling back one deployment can make another selected one active again; rolling that back too
        # would undo two deploys where the operator most likely meant one.
        per_target = Counter((d.model.name, d.deployment_target_id) for d in deployments)
        repeated = sorted(f"{name} on {target}" for (name, target), count in per_target.items() if count > 1)
        if repeated:
            self.message_user(
                request,
                f"Select one deployment per model and target ({'; '.join(repeated)} selected more than once).",
                messages.ERROR,
            )
            return None
        form = RollbackForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return self.render_action_form(
                request,
                action="roll_back",
                objects=deployments,
                form=form,
                title="Roll back deployments",
                intro="Each deployment below is marked rolled back, and the most recent earlier deployment of "
                "its model on its target (unless that version is archived) becomes active again.",
                submit="Roll back",
            )
        reason = form.cleaned_data["reason"] or f"rolled back from the admin by {request.user.get_username()}"
        for deployment in deployments:
            label = f"#{deployment.pk} ({deployment.model_version} on {deployment.deployment_target_id})"
            try:
                result = services.rollback_deployment(deployment=deployment, reason=reason)
            except RegistryError as exc:
                self.message_user(request, f"Deployment {label}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, deployment, f"Rolled back: {reason}")
            if result.restored is not None:
                restored = result.restored
                now = f"{restored.model_version.version} (deployment #{restored.pk}) is active there again"
            else:
                now = f"{deployment.deployment_target_id} has no active deployment of {deployment.model.name} now"
            self.message_user(request, f"Rolled back deployment {label}; {now}.", messages.SUCCESS)
        return None


@admin.register(Target)
class TargetAdmin(RegistryAdmin):
    """Where versions are deployed. The name is fixed once made (deployments refer to it); deleting a
    target with deployment history is refused (services.delete_target)."""

    list_display = ("name", "protected", "display_order", "description")
    search_fields = ("name",)
    ordering = ("display_order", "name")
    fields = ("name", "description", "protected", "display_order")

    def get_readonly_fields(self, request: HttpRequest, obj: Target | None = None) -> tuple[str, ...]:
        return ("name",) if obj is not None else ()

    def audit_events(self, obj: Target) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(object_type="target", object_repr=obj.name)

    def save_model(self, request: HttpRequest, obj: Target, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in services.EDITABLE_TARGET_FIELDS}
            saved = services.update_target(target=obj, changes=changes) if changes else obj
        else:
            saved = services.create_target(
                name=data["name"],
                description=data.get("description", ""),
                protected=data.get("protected", False),
                display_order=data["display_order"],
            )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Target) -> None:
        services.delete_target(target=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Target]) -> None:
        for target in queryset:
            services.delete_target(target=target)

    def get_deleted_objects(self, objs, request: HttpRequest):
        # Django would list (and refuse for want of a delete permission) every deployment PROTECT keeps;
        # whether a target may go is delete_target's call, a message naming the reason.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Deployment._meta.verbose_name)  # read-only here; PROTECT keeps them anyway
        return deleted, model_count, perms_needed, []


@admin.register(Experiment)
class ExperimentAdmin(RegistryAdmin):
    """A/B tests (issue #11), an operator's console over deployments_app.experiments: the "Add experiment"
    page (create_experiment, and start_experiment when "start now" is ticked), the page's Start, Pause,
    Resume and Stop buttons and the list's actions (the same services), "Change weights" (set_weights) and
    "Conclude…" (conclude_experiment), which shows the verdict and the results before it asks for the
    winner. The services judge every input; their refusals come back as form errors on the field they
    name, with nothing written. The page itself is read-only: Django's own save never runs here."""

    list_display = ("id", "name", "model_link", "target", "state", "metric", "started_at", "stopped_at")
    list_display_links = ("id", "name")
    list_filter = ("state",)
    list_select_related = ("model", "target")
    search_fields = ("name", "model__name")
    ordering = ("-id",)
    actions = ["start", "pause", "resume", "stop", "conclude"]
    change_form_template = "admin/deployments_app/experiment/change_form.html"
    fields = (
        "name",
        "model_link",
        "target",
        "state",
        "metric",
        "metric_kind",
        "higher_is_better",
        "min_samples",
        "salt",
        "created_at",
        "created_by",
        "started_at",
        "stopped_at",
        "weights",
        "results_table",
        "results_chart",
        "decision_summary",
    )
    readonly_fields = fields

    def audit_events(self, obj: Experiment) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(
            model_name=obj.model.name, object_type="experiment", changes__experiment=obj.pk
        )

    @admin.display(description="model", ordering="model__name")
    def model_link(self, experiment: Experiment) -> str:
        return admin_link(experiment.model, experiment.model.name)

    @admin.display(description="weights (bucket ranges)")
    def weights(self, experiment: Experiment) -> str:
        configuration = experiments.configuration(experiment)
        ranges = {entry["variant"]: entry["ranges"] for entry in configuration["ranges"]}
        return format_html(
            "<table><tr><th>variant</th><th>version</th><th>weight</th><th>buckets</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}{}</td><td>{}</td><td>{}%</td><td>{}</td></tr>",
                (
                    (
                        v.name,
                        " (control)" if v.is_control else "",
                        v.version.version,
                        f"{v.weight / 100:g}",
                        ", ".join(f"[{a}, {b})" for a, b in ranges[v.name]),
                    )
                    for v in experiment.variants.all()
                ),
            ),
        )

    @admin.display(description="results")
    def results_table(self, experiment: Experiment) -> str:
        return results_html(experiments.results(experiment))

    @admin.display(description="over time")
    def results_chart(self, experiment: Experiment) -> str:
        return render_to_string(
            "admin/deployments_app/experiment_chart.html", {"chart": experiment_charts.results_chart(experiment)}
        )

    @admin.display(description="decision")
    def decision_summary(self, experiment: Experiment) -> str:
        decision = experiment.decision
        if not decision:
            return "—"
        default = ", made the default" if decision.get("made_default") else ""
        return (
            f"Winner {decision['winner']} (version {decision['version']}, deployment #{decision['deployment']}"
            f"{default}), concluded {decision['concluded_at']}. Verdict then: {decision['verdict']}"
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Experiment]:
        return super().get_queryset(request).prefetch_related("variants__version")

    # --- Who may do what: the API's permissions (deployments_app.views.ExperimentViewSet) ---------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Experiment, "add"))

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False  # the page is read; its buttons and forms below change the experiment

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False  # an experiment is its model's history; deleting the model takes it along

    def has_lifecycle_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Experiment, "change"))

    def has_conclude_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, permission_for(Experiment, "conclude"))

    # --- The pages --------------------------------------------------------------------------------------
    def get_urls(self) -> list:
        page = self.admin_site.admin_view
        return [
            path("<path:object_id>/weights/", page(self.weights_view), name="deployments_app_experiment_weights"),
            path("<path:object_id>/conclude/", page(self.conclude_view), name="deployments_app_experiment_conclude"),
            *(
                path(
                    f"<path:object_id>/{act}/",
                    page(self.lifecycle_view),
                    {"act": act},
                    name=f"deployments_app_experiment_{act}",
                )
                for act in LIFECYCLE_BUTTONS
            ),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        experiment = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if experiment is not None:
            lifecycle = self.has_lifecycle_permission(request)
            context["lifecycle_buttons"] = [
                (act, label, reverse(f"admin:deployments_app_experiment_{act}", args=[experiment.pk]))
                for act, label in LIFECYCLE_BUTTONS.items()
                if lifecycle and experiment.state in experiments.TRANSITIONS[act][0]
            ]
            context["may_change_weights"] = lifecycle and experiment.state in experiments.WEIGHTS_CHANGEABLE
            context["may_conclude"] = (
                self.has_conclude_permission(request) and experiment.state in experiments.TRANSITIONS["conclude"][0]
            )
        return super().change_view(request, object_id, form_url, context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        targets = list(Target.objects.order_by("display_order", "name").values_list("name", flat=True))
        posted = request.POST if request.method == "POST" else None
        initial = {name: request.GET[name] for name in ("model", "target", "name") if name in request.GET}
        form = ExperimentForm(posted, targets=targets, initial=initial)
        variants = VariantFormSet(posted, prefix="variants")
        if posted is None:
            try:
                variants.extra = max(4, min(MAX_VARIANTS, int(request.GET.get("rows", 4))))
            except ValueError:
                pass
        variant_errors: list[str] = []
        checks: list[dict] = []
        if posted is not None and form.is_valid() and variants.is_valid():
            data = form.cleaned_data
            specs = [
                experiments.VariantSpec(
                    version=row["version"],
                    weight=basis_points(row["weight"]),
                    name=row["name"],
                    is_control=row["is_control"],
                )
                for row in variants.cleaned_data
                if row
            ]
            try:
                # Made and started together or not at all: a start refused (another experiment runs on
                # the target) leaves no draft behind.
                with transaction.atomic():
                    experiment = experiments.create_experiment(
                        model=self._model_named(data["model"]),
                        target=data["target"],
                        name=data["name"],
                        variants=specs,
                        acting_user=request.user,
                        created_by=request.user.get_username(),
                        metric=data["metric"],
                        metric_kind=data["metric_kind"],
                        higher_is_better=data["higher_is_better"],
                        min_samples=data["min_samples"],
                        salt=data["salt"] or None,
                    )
                    if data["start_now"]:
                        experiment = experiments.start_experiment(experiment=experiment, acting_user=request.user)
            except RegistryError as exc:
                checks = show_service_error(
                    exc, form, variant_errors, aliases={"state": "start_now", "weights": "variants"}
                )
            else:
                self.log_addition(request, experiment, [{"added": {}}])
                self.message_user(
                    request, f"Experiment {experiment.pk} ({experiment.name}) is {experiment.state}.", messages.SUCCESS
                )
                return HttpResponseRedirect(self._page_url(experiment))
        return self._render(
            request,
            "admin/deployments_app/experiment/add_form.html",
            title="Add experiment",
            form=form,
            variants=variants,
            variant_errors=variant_errors + list(variants.non_form_errors()),
            checks=checks,
            percent_help=PERCENT_HELP,
        )

    def weights_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._experiment(request, object_id, self.has_lifecycle_permission)
        form = WeightsForm(
            request.POST if request.method == "POST" else None,
            variants=sorted(experiment.variants.all(), key=lambda v: v.pk),
        )
        checks: list[dict] = []
        if form.is_bound and form.is_valid():
            try:
                experiments.set_weights(experiment=experiment, weights=form.weights())
            except RegistryError as exc:
                checks = show_service_error(exc, form, None, aliases={})
            else:
                self.message_user(request, f"Experiment {experiment.pk}'s weights are changed.", messages.SUCCESS)
                return HttpResponseRedirect(self._page_url(experiment))
        return self._render(
            request,
            "admin/deployments_app/experiment/weights_form.html",
            title=f"Change the weights of experiment {experiment.pk}",
            experiment=experiment,
            form=form,
            checks=checks,
            weights_table=self.weights(experiment),
            percent_help=PERCENT_HELP,
        )

    def conclude_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._experiment(request, object_id, self.has_conclude_permission)
        summary = experiments.results(experiment)
        form = ConcludeForm(
            request.POST if request.method == "POST" else None,
            variants=[v.name for v in experiment.variants.all()],
            suggested=summary["suggested_winner"],
        )
        checks: list[dict] = []
        if form.is_bound and form.is_valid():
            try:
                concluded = experiments.conclude_experiment(
                    experiment=experiment,
                    winner=form.cleaned_data["winner"],
                    make_default=form.cleaned_data["make_default"],
                    acting_user=request.user,
                    deployed_by=request.user.get_username(),
                )
            except RegistryError as exc:
                checks = show_service_error(exc, form, None, aliases={}, refused_version="winner")
            else:
                made_default = " and is the model's default version" if concluded.decision["made_default"] else ""
                self.message_user(
                    request,
                    f"Experiment {concluded.pk} concluded: {concluded.decision['winner']} is deployed to "
                    f"{concluded.target.name}{made_default}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._page_url(experiment))
        # The verdict and the results first: the operator decides with the evidence in front of them.
        return self._render(
            request,
            "admin/deployments_app/experiment/conclude_form.html",
            title=f"Conclude experiment {experiment.pk}",
            experiment=experiment,
            form=form,
            checks=checks,
            results_table=results_html(summary),
        )

    def lifecycle_view(self, request: HttpRequest, object_id: str, act: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id, self.has_lifecycle_permission)
        self._each(request, [experiment], self._moves(request)[act])
        return HttpResponseRedirect(self._page_url(experiment))

    def _experiment(self, request: HttpRequest, object_id: str, permission) -> Experiment:
        experiment = self.get_object(request, unquote(object_id))
        if experiment is None:
            raise Http404(f"Experiment {object_id} not found.")
        if not permission(request):
            raise PermissionDenied
        return experiment

    @staticmethod
    def _model_named(name: str) -> RegisteredModel:
        try:
            return model_selectors.get_model(name)
        except NotFound as exc:
            raise InvalidInput(exc.message, field="model") from None

    def _page_url(self, experiment: Experiment) -> str:
        return reverse("admin:deployments_app_experiment_change", args=[experiment.pk])

    def _render(self, request: HttpRequest, template: str, *, title: str, **context) -> TemplateResponse:
        request.current_app = self.admin_site.name
        form = context["form"]
        media = self.media + form.media
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "title": title,
                "subtitle": None,
                "opts": self.opts,
                "media": media,
                **context,
            },
        )

    # --- The life of an experiment, shared by the page's buttons and the list's actions ------------------
    def _moves(self, request: HttpRequest) -> dict:
        user = request.user
        return {
            "start": lambda e: experiments.start_experiment(experiment=e, acting_user=user),
            "pause": lambda e: experiments.pause_experiment(experiment=e),
            "resume": lambda e: experiments.resume_experiment(experiment=e),
            "stop": lambda e: experiments.stop_experiment(experiment=e),
        }

    def _each(self, request: HttpRequest, queryset, move) -> None:
        for experiment in queryset:
            try:
                moved = move(experiment)
            except RegistryError as exc:
                self.message_user(request, f"Experiment {experiment.pk}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"Experiment {experiment.pk} is {moved.state}.", messages.SUCCESS)

    @admin.action(description="Start", permissions=["lifecycle"])
    def start(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, self._moves(request)["start"])

    @admin.action(description="Pause", permissions=["lifecycle"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, self._moves(request)["pause"])

    @admin.action(description="Resume", permissions=["lifecycle"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, self._moves(request)["resume"])

    @admin.action(description="Stop", permissions=["lifecycle"])
    def stop(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, self._moves(request)["stop"])

    @admin.action(description="Conclude…", permissions=["conclude"])
    def conclude(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> HttpResponse | None:
        """The experiment's Conclude… page (conclude_view): one place shows the verdict and asks."""
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select one experiment to conclude.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:deployments_app_experiment_conclude", args=[chosen[0].pk]))


LIFECYCLE_BUTTONS = {"start": "Start", "pause": "Pause", "resume": "Resume", "stop": "Stop"}


def show_service_error(
    exc: RegistryError,
    form: forms.Form,
    variant_errors: list[str] | None,
    *,
    aliases: dict[str, str],
    refused_version: str = "variants",
) -> list[dict]:
    """A service's refusal on the form it came from: on the field it names (through `aliases`), the
    variants' errors above the variants' rows, the rest above the form. A promotion policy's refusal
    (which names no field) is about a version: the form's `refused_version` field. Returns the policy's
    failed checks, to show under the error."""
    problems = exc.errors or {None: [exc.message]}
    if isinstance(exc, PolicyRefused):
        problems = {refused_version: [exc.message]}
    for field, messages_ in problems.items():
        name = aliases.get(field, field) if field else None
        for problem in messages_:
            if name == "variants" and variant_errors is not None:
                variant_errors.append(problem)
            elif name in form.fields:
                form.add_error(name, problem)
            else:
                form.add_error(None, f"{field}: {problem}" if field and field not in problem else problem)
    return [c for c in getattr(exc, "checks", []) if not c.get("passed")]


def _figure(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def results_html(summary: dict) -> str:
    """The results as a table, the verdict above it."""
    rows = []
    for row in summary["variants"]:
        estimate, comparison = row["estimate"], row["comparison"]
        rows.append(
            (
                row["variant"] + (" (control)" if row["is_control"] else ""),
                row["units"],
                _figure(estimate["value"]) if estimate else "—",
                f"[{_figure(estimate['ci_low'])}, {_figure(estimate['ci_high'])}]" if estimate else "—",
                _figure(comparison["difference"]) if comparison else "—",
                f"[{_figure(comparison['ci_low'])}, {_figure(comparison['ci_high'])}]" if comparison else "—",
                _figure(comparison["p_value"], 3) if comparison else "—",
            )
        )
    ratio = summary["sample_ratio"]
    return format_html(
        "<p><strong>{}</strong></p><table><tr><th>variant</th><th>units</th><th>estimate</th><th>95% CI</th>"
        "<th>difference</th><th>95% CI</th><th>p-value</th></tr>{}</table><p>Sample ratio: chi-square {}, p {}{}.</p>",
        summary["verdict"],
        format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>", rows),
        _figure(ratio["chi_square"]),
        _figure(ratio["p_value"], 3),
        " — mismatch" if ratio["mismatch"] else "",
    )


@admin.register(PromotionPolicy)
class PromotionPolicyAdmin(RegistryAdmin):
    """The rules a version must meet before it is deployed to a target (deployments_app.policies). A
    policy with a model adds to its target's own policy for that model."""

    list_display = (
        "target",
        "model",
        "required_status",
        "approvals_required",
        "soak_target",
        "soak_hours",
        "updated_at",
    )
    list_select_related = ("target", "model", "soak_target")
    search_fields = ("target__name", "model__name")
    ordering = ("target__display_order", "target__name", "id")
    raw_id_fields = ("model",)
    fieldsets = (
        (None, {"fields": ("target", "model")}),
        ("Version", {"fields": ("required_status", "require_format_check", "require_verified_file")}),
        ("Metrics", {"fields": ("min_metrics", "max_regressions")}),
        ("People and time", {"fields": ("approvals_required", "soak_target", "soak_hours")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: PromotionPolicy | None = None) -> tuple[str, ...]:
        return ("target", "model") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: PromotionPolicy, form, change: bool) -> None:
        data = form.cleaned_data
        rules = {name: data[name] for name in services.POLICY_FIELDS if name in data and name != "soak_target"}
        rules["soak_target"] = data["soak_target"].name if data.get("soak_target") else None
        target = obj.target if change else data["target"]
        model = obj.model if change else data.get("model")
        adopt(obj, services.set_policy(target=target, model=model, rules=rules))

    def delete_model(self, request: HttpRequest, obj: PromotionPolicy) -> None:
        services.delete_policy(target=obj.target, model=obj.model)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PromotionPolicy]) -> None:
        for policy in queryset.select_related("target", "model"):
            services.delete_policy(target=policy.target, model=policy.model)


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, RegistryAdmin):
    """Who approved which version for which target: written by the versions' "Approve for a target…"
    action and POST /models/{m}/versions/{v}/approvals (deployments_app.services.approve_version)."""

    list_display = ("id", "version", "target", "user", "created_at", "comment")
    list_select_related = ("version__model", "target", "user")
    search_fields = ("version__model__name", "version__version", "target__name", "user__username")
    ordering = ("-created_at", "-id")
    fields = ("version", "target", "user", "comment", "created_at")
    readonly_fields = fields


@admin.register(AlertRule)
class AlertRuleAdmin(RegistryAdmin):
    """Performance alert rules (issue #9 §4): made, changed and deleted through deployments_app.alerts, as
    /models/{m}/alert-rules does; the model is fixed once made."""

    list_display = ("name", "model", "target", "metric", "source", "condition", "severity", "action", "enabled")
    list_filter = ("enabled", "severity", "action", "condition")
    list_select_related = ("model", "target")
    search_fields = ("name", "model__name", "metric")
    ordering = ("model__name", "name")
    raw_id_fields = ("model",)
    fieldsets = (
        (None, {"fields": ("model", "name", "target", "enabled", "severity", "action")}),
        ("What is watched", {"fields": ("metric", "source", "aggregate", "window_points", "window_minutes")}),
        (
            "When it fires",
            {"fields": ("condition", "threshold", "baseline", "drop_by", "drop_relative", "min_points")},
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: AlertRule | None = None) -> tuple[str, ...]:
        return ("model",) if obj is not None else ()

    def audit_events(self, obj: AlertRule) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(object_type="alert_rule", changes__rule=obj.pk)

    def save_model(self, request: HttpRequest, obj: AlertRule, form, change: bool) -> None:
        data = form.cleaned_data
        values = {name: data[name] for name in alerts.RULE_FIELDS if name in data and name != "target"}
        values["target"] = data["target"].name if data.get("target") else None
        if change:
            saved = alerts.update_rule(rule=obj, changes=values, acting_user=request.user)
        else:
            saved = alerts.create_rule(
                model=data["model"], values=values, acting_user=request.user, created_by=request.user.get_username()
            )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        alerts.delete_rule(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset.select_related("model"):
            alerts.delete_rule(rule=rule)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, RegistryAdmin):
    """Alerts: raised and resolved by their rules' evaluation, read here; "Acknowledge" records who has seen
    them, as POST /alerts/{id}/acknowledge does."""

    # Fits a 1400 px window beside the navigation and the filters: the rule by its name (the version
    # column names the model), the start to the minute; when it resolved is on its own page.
    list_display = ("rule_name", "model_version", "severity", "state", "value", "started", "acknowledged_by")
    list_display_links = ("rule_name",)
    list_filter = ("state", "rule__severity")
    list_select_related = ("rule__model", "version__model")
    search_fields = ("rule__name", "rule__model__name", "version__version")
    ordering = ("-started_at", "-id")
    actions = ["acknowledge"]
    fields = (
        "rule",
        "version",
        "state",
        "value",
        "reason",
        "action_taken",
        "started_at",
        "resolved_at",
        "resolved_value",
        "acknowledged_by",
        "acknowledged_at",
    )
    readonly_fields = fields

    @admin.display(description="rule", ordering="rule__name")
    def rule_name(self, alert: Alert) -> str:
        return alert.rule.name

    @admin.display(description="version", ordering="rule__model__name")
    def model_version(self, alert: Alert) -> str:
        return f"{alert.rule.model.name}:{alert.version.version}"

    @admin.display(description="started", ordering="started_at")
    def started(self, alert: Alert) -> str:
        return f"{timezone.localtime(alert.started_at):%Y-%m-%d %H:%M}"

    @admin.display(description="severity", ordering="rule__severity")
    def severity(self, alert: Alert) -> str:
        return alert.rule.severity

    def audit_events(self, obj: Alert) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(object_type="alert", changes__alert=obj.pk)

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return allows(request.user, "deployments_app.acknowledge_alert")

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        for alert in queryset:
            try:
                alerts.acknowledge_alert(alert=alert, acting_user=request.user)
            except RegistryError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            self.message_user(request, f"Alert {alert.pk} acknowledged.", messages.SUCCESS)
