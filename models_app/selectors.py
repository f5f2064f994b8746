"""Reads: the querysets the API and admin list from, shaped so a page costs a fixed number of queries,
and the lookups by name that the commands share."""

from __future__ import annotations

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from deployments_app.models import Deployment, DeploymentStatus
from models_app.models import ModelVersion, RegisteredModel
from registry_site.errors import NotFound


def get_model(name: str) -> RegisteredModel:
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"No model named '{name}'.") from None


def get_version(model_name: str, version: str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model").get(model__name=model_name, version=version)
    except ModelVersion.DoesNotExist:
        raise NotFound(f"No version '{version}' of model '{model_name}'.") from None


def models_with_default() -> QuerySet[RegisteredModel]:
    default = ModelVersion.objects.filter(model=OuterRef("pk"), is_default=True).values("version")[:1]
    return RegisteredModel.objects.annotate(default_version=Subquery(default))


def versions_with_files_and_targets() -> QuerySet[ModelVersion]:
    active = Deployment.objects.filter(deployment_status=DeploymentStatus.ACTIVE).only(
        "id", "model_version_id", "deployment_target"
    )
    return ModelVersion.objects.select_related("model", "artifact").prefetch_related(
        Prefetch("deployments", queryset=active, to_attr="active_deployments")
    )


def deployed_targets(version: ModelVersion) -> list[str]:
    """Targets where `version` is the active deployment (the seed's `deployed_to`)."""
    active = getattr(version, "active_deployments", None)
    if active is None:
        active = version.deployments.filter(deployment_status=DeploymentStatus.ACTIVE)
    return sorted(d.deployment_target for d in active)
