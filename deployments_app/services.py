"""Deploying a version to a target, and rolling a deployment back. Called by the API, the admin's
actions and the management commands alike.

Both lock the model's row first, so deploys and rollbacks of one model's targets take turns across all
workers; the partial unique index on (model, target) for active rows backs that up in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from deployments_app.models import DEPLOY_TO_PRODUCTION, PRODUCTION_TARGET, Deployment, DeploymentStatus
from models_app.models import ModelVersion, RegisteredModel, VersionStatus
from registry_site import audit
from registry_site.errors import Conflict, Forbidden, NotFound
from registry_site.permissions import Caller, allows
from registry_site.validators import clean_fields


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    created: bool  # False when the version was already the active one on that target


@dataclass(frozen=True)
class RollbackResult:
    rolled_back: Deployment
    restored: Deployment | None  # None: nothing earlier to return to, the target is now empty


def _active_on_target(model_id: int, target: str) -> Deployment | None:
    return Deployment.objects.filter(
        model_id=model_id, deployment_target=target, deployment_status=DeploymentStatus.ACTIVE
    ).first()


@transaction.atomic
def deploy_version(
    *,
    version: ModelVersion,
    target: str,
    acting_user: Caller,
    deployed_by: str = "",
    deployment_config: dict[str, Any] | None = None,
) -> DeployResult:
    """Make `version` the active deployment of its model on `target`, superseding whatever was active
    there. Deploying the version that is already active changes nothing.

    `acting_user` is who asks (the API's or the admin's user, the shell's Operator for a command):
    deploying to the production target needs the deployer role's permission."""
    if target.lower() == PRODUCTION_TARGET and not allows(acting_user, DEPLOY_TO_PRODUCTION):
        raise Forbidden(f"Deploying to '{PRODUCTION_TARGET}' needs the deployer role.", field="deployment_target")
    given: dict[str, Any] = {"deployment_target": target, "deployed_by": deployed_by}
    if deployment_config is not None:
        given["deployment_config"] = deployment_config
    clean_fields(Deployment, given)
    # The model (or the version) may have been deleted since the caller looked it up: a request that
    # held the lock before us deleted it. That is a 404, not a crash.
    if RegisteredModel.objects.select_for_update().filter(pk=version.model_id).first() is None:
        raise NotFound(f"Version '{version.version}' no longer exists: its model was deleted meanwhile.")
    found = ModelVersion.objects.select_related("model").filter(pk=version.pk).first()
    if found is None:
        raise NotFound(f"Version '{version.version}' no longer exists: it was deleted meanwhile.")
    version = found
    if version.status == VersionStatus.ARCHIVED:
        raise Conflict(f"Version '{version.version}' is archived and cannot be deployed.", field="version")
    if not version.artifact_id:
        raise Conflict(
            f"Version '{version.version}' has no file; attach one with PUT .../versions/{version.version}/file "
            "before deploying it.",
            field="version",
        )

    current = _active_on_target(version.model_id, target)
    if current is not None and current.model_version_id == version.pk:
        return DeployResult(current, created=False)
    if current is not None:
        current.deployment_status = DeploymentStatus.SUPERSEDED
        current.save(update_fields=["deployment_status"])
    deployment = Deployment.objects.create(
        model=version.model,
        model_version=version,
        deployment_target=target,
        deployed_by=deployed_by,
        deployment_config=version.deployment_config if deployment_config is None else deployment_config,
    )
    audit.record(
        "deploy",
        object_type="deployment",
        object_repr=f"{version.model.name}:{version.version} -> {target}",
        model_name=version.model.name,
        changes={
            "deployment": deployment.pk,
            "superseded": current.pk if current else None,
            "deployment_config": deployment.deployment_config,
        },
    )
    return DeployResult(deployment, created=True)


@transaction.atomic
def rollback_deployment(*, deployment: Deployment, reason: str = "") -> RollbackResult:
    """Roll back an active deployment: mark it rolled back and make the most recent superseded
    deployment of the same model on the same target (whose version is not archived) active again."""
    locked = RegisteredModel.objects.select_for_update().filter(pk=deployment.model_id).first() is not None
    found = Deployment.objects.filter(pk=deployment.pk).first() if locked else None
    if found is None:
        raise NotFound(f"Deployment {deployment.pk} no longer exists: its model was deleted meanwhile.")
    deployment = found
    if deployment.deployment_status != DeploymentStatus.ACTIVE:
        raise Conflict(
            f"Deployment {deployment.pk} is {deployment.deployment_status}, not active; only the active "
            "deployment of a target can be rolled back."
        )
    deployment.deployment_status = DeploymentStatus.ROLLED_BACK
    deployment.rollback_at = timezone.now()
    deployment.rollback_reason = reason
    deployment.save(update_fields=["deployment_status", "rollback_at", "rollback_reason"])

    previous = (
        Deployment.objects.filter(
            model_id=deployment.model_id,
            deployment_target=deployment.deployment_target,
            deployment_status=DeploymentStatus.SUPERSEDED,
        )
        .exclude(model_version__status=VersionStatus.ARCHIVED)
        .order_by("-deployed_at", "-id")
        .first()
    )
    if previous is not None:
        previous.deployment_status = DeploymentStatus.ACTIVE
        previous.save(update_fields=["deployment_status"])
    model_name = deployment.model.name
    audit.record(
        "rollback",
        object_type="deployment",
        object_repr=f"{model_name}:{deployment.model_version.version} -> {deployment.deployment_target}",
        model_name=model_name,
        changes={"deployment": deployment.pk, "reason": reason, "restored": previous.pk if previous else None},
    )
    return RollbackResult(deployment, previous)
