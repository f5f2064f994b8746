"""Deployments of model versions to targets (the seed's `model_deployments` table) and their rollbacks."""

from __future__ import annotations

from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from models_app.models import ModelVersion, RegisteredModel
from registry_site.model_fields import RuledJSONField
from registry_site.validators import validate_json_object

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
