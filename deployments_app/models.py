"""Deployments of model versions to targets (the seed's `model_deployments` table) and their rollbacks."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from models_app.models import ModelVersion, RegisteredModel
from registry_site.model_fields import RuledJSONField
from registry_site.validators import validate_json_object

# Deploying to this target needs the deployer role's own permission, not just add_deployment.
PRODUCTION_TARGET = "production"
DEPLOY_TO_PRODUCTION = "deployments_app.deploy_to_production"

target_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$(?!\n)",
    "Use 1-64 ASCII letters, digits, '_', '-' or '.', not starting with a dot or a dash.",
)


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
    deployment_target = models.CharField(max_length=64, validators=[target_validator])
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
            ("deploy_to_production", "Can deploy to the 'production' target"),
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
        return f"{self.model_version} -> {self.deployment_target} ({self.deployment_status})"
