"""Reads: the querysets the API and admin list from, shaped so a page costs a fixed number of queries,
and the lookups by name that the commands share."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import JSONObject

from deployments_app.models import LIVE_STATES, Deployment, DeploymentStatus, Variant
from deployments_app.selectors import get_target_or_404
from models_app.models import ModelVersion, RegisteredModel, VersionMetric, VersionTag
from registry_site.errors import NotFound
from registry_site.model_fields import JSONArrayAgg, JSONObjectAgg
from registry_site.prepared import ID_MARKER, PreparedPages, PreparedQuery
from registry_site.row_views import RowView


def model_not_found(name: str) -> NotFound:
    return NotFound(f"Model '{name}' not found.")


def version_not_found(model_name: str, version: str) -> NotFound:
    """The 404 in the registry's words: which of the two is missing."""
    if not model_exists(model_name):
        return model_not_found(model_name)
    return NotFound(f"Version '{version}' of model '{model_name}' not found.")


def get_model(name: str) -> RegisteredModel:
    model = _MODEL.first(name=name)  # RegisteredModel.objects.get(name=name), its SQL compiled once
    if model is None:
        raise model_not_found(name)
    return model


_MODEL = PreparedQuery(lambda name: RegisteredModel.objects.filter(name=name), "name")


def get_version(model_name: str, version: str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model").get(model__name=model_name, version=version)
    except ModelVersion.DoesNotExist:
        raise version_not_found(model_name, version) from None


def models_with_default() -> QuerySet[RegisteredModel]:
    # No order: a model has at most one default (a constraint), and with the versions' default order
    # (newest first) PostgreSQL may walk the model's versions newest first looking for it, all of them when
    # the default is the oldest, rather than take the partial unique index on the default.
    default = ModelVersion.objects.filter(model=OuterRef("pk"), is_default=True).order_by().values("version")[:1]
    return RegisteredModel.objects.annotate(default_version=Subquery(default))


def models_listed() -> QuerySet[RegisteredModel]:
    """models_with_default as lists show them: without the model card (up to 100,000 characters each)."""
    return models_with_default().defer("readme")


_MODEL_PAGES = PreparedPages(models_listed, views=True, text_position=True)


def model_pages():
    """models_listed() for the cursor pagination (by name), each page shape's SQL compiled once and its rows
    read as row views, as version_pages does for a model's versions."""
    return _MODEL_PAGES.pages()


def versions_with_files_and_targets() -> QuerySet[ModelVersion]:
    """Versions with their model, file and the targets they are active on (`active_targets`), all in
    the one query that reads them. Built once per process and cloned: resolving the annotation's
    subquery costs more CPU than the SQL it makes takes to run."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = _versions_with_files_and_targets()
    return _VERSIONS.all()


_VERSIONS: QuerySet[ModelVersion] | None = None


def _versions_with_files_and_targets() -> QuerySet[ModelVersion]:
    active = (
        Deployment.objects.filter(model_version=OuterRef("pk"), deployment_status=DeploymentStatus.ACTIVE)
        .order_by()
        .values("model_version")
        .annotate(targets=JSONArrayAgg("deployment_target"))
        .values("targets")
    )
    # Where a running or paused experiment splits a target's traffic with this version as a variant (issue
    # #11): the split beside `deployed_to`, which stays the seed's list of targets it is active on.
    splits = (
        Variant.objects.filter(version=OuterRef("pk"), experiment__state__in=LIVE_STATES)
        .order_by()
        .values("version")
        .annotate(
            splits=JSONArrayAgg(
                JSONObject(
                    target="experiment__target__name",
                    experiment="experiment_id",
                    state="experiment__state",
                    variant="name",
                    weight="weight",
                    is_control="is_control",
                )
            )
        )
        .values("splits")
    )
    return ModelVersion.objects.select_related("model", "artifact").annotate(
        active_targets=Subquery(active),
        live_splits=Subquery(splits),
        metric_map=Subquery(_map_of(VersionMetric, "name")),
        tag_map=Subquery(_map_of(VersionTag, "key")),
    )


def _map_of(rows: type[VersionMetric] | type[VersionTag], key: str) -> QuerySet:
    """A version's named metrics or tags as one JSON object, for the row that reads the version
    (models_app.open_metadata reads it back)."""
    return (
        rows.objects.filter(version=OuterRef("pk"))
        .order_by()
        .values("version")
        .annotate(map=JSONObjectAgg(key, "value"))
        .values("map")
    )


def versions_of(model_name: str) -> QuerySet[ModelVersion]:
    """versions_with_files_and_targets of one model, by its name, without looking the model up first: the
    model's id is a subquery, so the version's own index (model, version) or (model, -id) is used. Empty
    both when the model has no such versions and when it does not exist (model_not_found tells which)."""
    model_id = RegisteredModel.objects.filter(name=model_name).order_by().values("pk")[:1]
    return versions_with_files_and_targets().filter(model_id=Subquery(model_id))


# A version in a list shows its model's name only, and of its file the size and the storage key: a page of
# 50 need not read (and convert) 50 copies of the model's card, up to 100,000 characters each, and the
# rest.
_MODEL_COLUMNS_NOT_LISTED = [
    f"model__{field.name}" for field in RegisteredModel._meta.concrete_fields if field.name not in ("id", "name")
]


def versions_listed(model_name: str) -> QuerySet[ModelVersion]:
    """versions_of(model_name) as lists show them."""
    return versions_of(model_name).defer(*_MODEL_COLUMNS_NOT_LISTED, "artifact__created_at")


_PAGES = PreparedPages(versions_listed, "model_name", views=True)


def version_pages(model_name: str):
    """versions_listed(model_name) for the cursor pagination, each page shape's SQL compiled once, its rows
    read as row views (registry_site.row_views): a page is only shown."""
    return _PAGES.pages(model_name=model_name)


# The API's hot reads, compiled once (registry_site.prepared): a version by its model's name and its own,
# and a model's default version. None when not found (version_not_found / model_not_found tell which).
_VERSION = PreparedQuery(lambda model, version: versions_of(model).filter(version=version), "model", "version")
_DEFAULT = PreparedQuery(lambda model: versions_of(model).filter(is_default=True).order_by()[:1], "model")


def version_by_names(model_name: str, version: str) -> ModelVersion | None:
    """versions_of(model_name)'s version `version`, as the API shows it."""
    return _VERSION.first(model=model_name, version=version)


def default_version_of(model_name: str) -> ModelVersion | None:
    """versions_of(model_name)'s default version (at most one per model: a constraint)."""
    return _DEFAULT.first(model=model_name)


# The same reads for an answer that only shows the version: a row view (registry_site.row_views), not an
# instance to act on.
def version_shown(model_name: str, version: str) -> RowView | None:
    return _VERSION.first_view(model=model_name, version=version)


def default_version_shown(model_name: str) -> RowView | None:
    return _DEFAULT.first_view(model=model_name)


def version_shown_by_id(pk: int) -> RowView | None:
    """A version just written, read back as the API shows it."""
    return _VERSION_BY_ID.first_view(pk=pk)


_VERSION_BY_ID = PreparedQuery(
    lambda pk: versions_with_files_and_targets().filter(pk=pk), "pk", markers={"pk": ID_MARKER}
)


def resolve_version(model_name: str, ref: str) -> ModelVersion:
    """The version of `model_name` that `ref` names, as the routes name them: a version string,
    `default`, `latest`, or `@target` (the version active on that deployment target). NotFound says
    which is missing."""
    versions = versions_of(model_name)
    if ref == "default":
        found = default_version_of(model_name)
    elif ref == "latest":
        found = versions.order_by("-created_at", "-id").first()
    elif ref.startswith("@"):
        target = get_target_or_404(ref[1:])
        found = versions.filter(
            deployments__deployment_target=target, deployments__deployment_status=DeploymentStatus.ACTIVE
        ).first()
        if found is None and model_exists(model_name):
            raise NotFound(f"Model '{model_name}' has no version active on '{target.name}'.")
    else:
        found = version_by_names(model_name, ref)
    if found is None:
        raise version_not_found(model_name, ref)
    return found


def model_exists(name: str) -> bool:
    return RegisteredModel.objects.filter(name=name).exists()


_NOT_READ = object()


def deployed_targets(version: ModelVersion) -> list[str]:
    """Targets where `version` is the active deployment (the seed's `deployed_to`)."""
    targets: Any = getattr(version, "active_targets", _NOT_READ)
    if targets is _NOT_READ:
        active = version.deployments.filter(deployment_status=DeploymentStatus.ACTIVE)
        targets = active.values_list("deployment_target", flat=True)
    return sorted(targets or ())


def experiment_splits(version: ModelVersion) -> list[dict[str, Any]]:
    """The running or paused experiments `version` is a variant of, by target: the experiment's id and
    state, the variant's name, weight (basis points of the target's traffic) and whether it is the
    control. Read with the version (versions_with_files_and_targets), or by a query of its own."""
    splits: Any = getattr(version, "live_splits", _NOT_READ)
    if splits is _NOT_READ:
        splits = [
            {
                "target": v.experiment.target.name,
                "experiment": v.experiment_id,
                "state": v.experiment.state,
                "variant": v.name,
                "weight": v.weight,
                "is_control": v.is_control,
            }
            for v in Variant.objects.filter(version=version, experiment__state__in=LIVE_STATES).select_related(
                "experiment__target"
            )
        ]
    if not splits:
        return []  # most versions: no live experiment
    # SQLite's json_object writes a boolean as 0 or 1.
    return sorted(({**s, "is_control": bool(s["is_control"])} for s in splits), key=lambda s: s["target"])
