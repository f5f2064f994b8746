"""The admin console's deployment history: read-only, since it is written only by deploying a version
(the versions' "Deploy to target…" action, POST /deploy) and by rolling back, which the "Roll back" action
here does through the same service as POST /deployments/{id}/rollback.

And the targets: made, changed and deleted through the same services as /targets; their promotion
policies, set through the same service as PUT /targets/{t}/policy; the approvals, read-only here (a
version's "Approve for a target…" action records them, as POST .../approvals does)."""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse

from deployments_app import services
from deployments_app.forms import RollbackForm
from deployments_app.models import Approval, Deployment, PromotionPolicy, Target
from models_app.models import RegisteredModel
from registry_site.admin_base import (
    InputFilter,
    ReadOnlyAdminMixin,
    RegistryAdmin,
    admin_link,
    adopt,
    prefix_match,
)
from registry_site.errors import RegistryError
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
