"""Reads: the querysets the API and admin list from, shaped so a page costs a fixed number of queries,
and the lookups by name that the commands share."""

from __future__ import annotations

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from deployments_app.models import Deployment, DeploymentStatus
from models_app.models import ModelVersion, RegisteredModel
from registry_site.errors import NotFound


def model_not_found(name: str) -> NotFound:
    return NotFound(f"Model '{name}' not found.")


def version_not_found(model_name: str, version: str) -> NotFound:
    """The 404 in the registry's words: which of the two is missing."""
    if not RegisteredModel.objects.filter(name=model_name).exists():
        return model_not_found(model_name)
    return NotFound(f"Version '{version}' of model '{model_name}' not found.")


def get_model(name: str) -> RegisteredModel:
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist:
        raise model_not_found(name) from None


def get_version(model_name: str, version: str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model").get(model__name=model_name, version=version)
    except ModelVersion.DoesNotExist:
        raise version_not_found(model_name, version) from None


def models_with_default() -> QuerySet[RegisteredModel]:
    default = ModelVersion.objects.filter(model=OuterRef("pk"), is_default=True).values("version")[:1]
    return RegisteredModel.objects.annotate(default_version=Subquery(default))


def versions_with_files_and_targets() -> QuerySet[ModelVersion]:
    active = Deployment.objects.filter(deployment_status=DeploymentStatus.ACTIVE).only(
        "id", "model_version_id", "deployment_target"
    )
    return ModelVersion.objects.select_related("model", "artifact").prefetch_related(
        Prefetch("deployments", queryset=active, to_attr="active_deployments"), "metric_values", "tag_values"
    )


def deployed_targets(version: ModelVersion) -> list[str]:
    """Targets where `version` is the active deployment (the seed's `deployed_to`)."""
    active = getattr(version, "active_deployments", None)
    if active is None:
        active = version.deployments.filter(deployment_status=DeploymentStatus.ACTIVE)
    return sorted(d.deployment_target_id for d in active)
