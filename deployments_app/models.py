"""Deployments of model versions to targets (the seed's `model_deployments` table) and their rollbacks."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from models_app.models import ModelVersion, RegisteredModel, VersionStatus
from registry_site.model_fields import RuledJSONField
from registry_site.validators import validate_json_object, validate_metric_minimums, validate_regression_rules

target_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$(?!\n)",
    "Use 1-64 ASCII letters, digits, '_', '-' or '.', not starting with a dot or a dash.",
)


class Target(models.Model):
    """Where a version can be deployed (issue #10): a known name, so `Production` and `production` are
    one target and a typo is refused instead of becoming a new target. A protected target needs the
    deployer role's own permission (registry_site.permissions.may_deploy_to).

    Deployments refer to a target by its name (a foreign key to `name`), which is why a target's name
    never changes once made: the seed's `deployment_target` stays the text it always was."""

    name = models.CharField(max_length=64, unique=True, validators=[target_validator])
    description = models.TextField(blank=True, default="", max_length=2000, validators=[MaxLengthValidator(2000)])
    protected = models.BooleanField(
        default=False, help_text="Deploying here needs the deployer role (deployments_app.deploy_to_production)."
    )
    display_order = models.PositiveIntegerField(
        default=100, help_text="Lists show targets by this number, then by name."
    )

    class Meta:
        db_table = "deployment_targets"
        ordering = ["display_order", "name"]
        constraints = [
            # `unique=True` above is the key deployments refer to; this one makes `Production` the same
            # name as `production`.
            models.UniqueConstraint(
                Lower("name"),
                name="deployment_targets_name_unique_ignoring_case",
                violation_error_message="A target with this name (ignoring case) already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DeploymentStatus(models.TextChoices):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class Deployment(models.Model):
    # The model is the version's model, kept on the row so the database itself can enforce "at most one
    # active deployment per model and target" with a partial unique index.
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="deployments")
    # RESTRICT: a version with deployment history cannot be deleted on its own, but deleting its whole
    # model takes the history along (the model's CASCADE reaches these rows too).
    model_version = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="deployments")
    # The target's name, in the seed's column: the database refuses a deployment to an unknown target,
    # and a target that has deployments cannot be deleted (PROTECT; deployments_app.services.delete_target
    # says so first, as a 409).
    deployment_target = models.ForeignKey(
        Target, to_field="name", db_column="deployment_target", on_delete=models.PROTECT, related_name="deployments"
    )
    deployed_at = models.DateTimeField(default=timezone.now)
    deployed_by = models.CharField(max_length=150, blank=True, default="")
    deployment_status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.ACTIVE
    )
    deployment_config = RuledJSONField(default=dict, blank=True, validators=[validate_json_object])
    rollback_at = models.DateTimeField(null=True, blank=True)
    rollback_reason = models.TextField(blank=True, default="")

    class Meta:
        db_table = "model_deployments"
        ordering = ["-id"]
        permissions = [
            ("rollback_deployment", "Can roll back a deployment"),
            # The codename is the one the deployer role has held since before targets had a protected flag.
            ("deploy_to_production", "Can deploy to protected targets (such as production)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "deployment_target"],
                condition=Q(deployment_status="active"),
                name="model_deployments_one_active_per_target",
            ),
            models.CheckConstraint(
                condition=Q(deployment_status__in=DeploymentStatus.values),
                name="model_deployments_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(deployment_status="rolled_back", rollback_at__isnull=False)
                | (~Q(deployment_status="rolled_back") & Q(rollback_at__isnull=True)),
                name="model_deployments_rollback_at_iff_rolled_back",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "deployment_target", "-deployed_at"]),
            # The console's deployment list, newest first, without sorting the whole history (issue #15).
            models.Index(fields=["-deployed_at", "-id"], name="model_deployments_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} -> {self.deployment_target_id} ({self.deployment_status})"


MAX_APPROVALS_REQUIRED = 10
MAX_SOAK_HOURS = 24 * 365


class PromotionPolicy(models.Model):
    """What a version must meet before it is deployed to `target` (issue #10 §4), evaluated by
    deployments_app.policies.evaluate inside deploy_version, so every front door obeys it.

    A target has at most one policy of its own (`model` null) and at most one per model. A model's policy
    adds to its target's: both are evaluated and every rule of each must pass, so a model's policy can
    only make the target's stricter, never relax it. A rule left at its default (blank status, no
    minimums, False, 0) is not evaluated."""

    # The rules' fields: what PUT .../policy, the admin and set_policy take.
    RULES = (
        "required_status",
        "min_metrics",
        "max_regressions",
        "require_format_check",
        "require_verified_file",
        "approvals_required",
        "soak_target",
        "soak_hours",
    )

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="policies")
    model = models.ForeignKey(
        RegisteredModel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="promotion_policies",
        help_text="Empty: the target's own policy, for every model. Set: an extra policy for this model.",
    )
    required_status = models.CharField(
        max_length=16,
        choices=VersionStatus.choices,
        blank=True,
        default="",
        help_text="The status the version must have (e.g. approved); empty: any status.",
    )
    min_metrics = RuledJSONField(
        default=dict,
        blank=True,
        validators=[validate_metric_minimums],
        help_text='Each named metric must be at least this: {"accuracy": 0.9, "auc": 0.85}. The seed\'s five '
        "and the open metrics alike.",
    )
    max_regressions = RuledJSONField(
        default=list,
        blank=True,
        validators=[validate_regression_rules],
        help_text="Not worse than the version active on the target by more than max_drop (absolute): "
        '[{"metric": "auc", "max_drop": 0.01}, {"metric": "latency_ms", "max_drop": 5, "lower_is_better": true}].',
    )
    require_format_check = models.BooleanField(
        default=False, help_text="The file's format check must have passed (not failed, not skipped)."
    )
    require_verified_file = models.BooleanField(
        default=False,
        help_text="The version must have a file whose sha256 the registry computed while storing it.",
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_APPROVALS_REQUIRED)],
        help_text="Approvals of the version for this target by users other than the one deploying.",
    )
    soak_target = models.ForeignKey(
        Target,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version must have been active on this target (e.g. staging) for soak_hours.",
    )
    soak_hours = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_SOAK_HOURS)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "promotion_policies"
        ordering = ["target__display_order", "target__name", "id"]
        verbose_name_plural = "promotion policies"
        constraints = [
            models.UniqueConstraint(
                fields=["target"],
                condition=Q(model__isnull=True),
                name="promotion_policies_one_per_target",
                violation_error_message="This target has a policy already.",
            ),
            models.UniqueConstraint(
                fields=["target", "model"],
                name="promotion_policies_one_per_target_and_model",
                violation_error_message="This target has a policy for this model already.",
            ),
            models.CheckConstraint(
                condition=Q(required_status="") | Q(required_status__in=VersionStatus.values),
                name="promotion_policies_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(approvals_required__lte=MAX_APPROVALS_REQUIRED),
                name="promotion_policies_approvals_bounded",
            ),
            # A soak rule names both where and how long, or neither.
            models.CheckConstraint(
                condition=Q(soak_target__isnull=True, soak_hours=0)
                | Q(soak_target__isnull=False, soak_hours__gt=0, soak_hours__lte=MAX_SOAK_HOURS),
                name="promotion_policies_soak_complete",
                violation_error_message="Give both soak_target and soak_hours (more than 0), or neither.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target.name} policy" + (f" for {self.model.name}" if self.model is not None else "")


class Approval(models.Model):
    """A user's approval of a version for a target: what a policy's `approvals_required` counts (never
    the deploying user's own). Recorded by deployments_app.services.approve_version, audited."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="approvals")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="version_approvals")
    comment = models.TextField(blank=True, default="", validators=[MaxLengthValidator(2000)])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "version_approvals"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target", "user"],
                name="version_approvals_one_per_user",
                violation_error_message="This user has approved this version for this target already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} for {self.target.name} by {self.user}"
