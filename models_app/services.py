"""The registry's rules for models and versions: create, register a version with its file, set the
default, archive, delete. The API, the admin and the management commands all call these functions;
none of them re-implements a rule. Each field's own rule is on the model (models.py); these functions
apply it (clean_fields) to whatever they are given before they write anything.

Every workflow that changes a model's versions first locks the model's row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's IMMEDIATE transactions serialize all writers anyway), so two workers acting on the
same model take turns, and the database's constraints back up every rule.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from deployments_app.models import Deployment, DeploymentStatus, Variant
from models_app import artifacts, maintenance, metric_history, open_metadata
from models_app.format_checks import FormatCheck, check_format
from models_app.models import (
    METRIC_FIELDS,
    RESERVED_VERSIONS,
    Artifact,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from models_app.uploads import HashedUpload
from registry_site import audit
from registry_site.errors import Conflict, InvalidInput, NotFound
from registry_site.prepared import ID_MARKER, PreparedQuery
from registry_site.validators import clean_fields

logger = logging.getLogger(__name__)

# Fields of a version that may change after it is registered. The version string and the file never do.
EDITABLE_VERSION_FIELDS = frozenset(
    {
        "format",
        "status",
        "accuracy",
        "precision",
        "recall",
        "f1_score",
        "mAP",
        "input_shape",
        "output_shape",
        "training_config",
        "release_notes",
        "deployment_config",
        # Lineage (issue #9).
        "training_run",
        "code_commit",
        "dataset_name",
        "dataset_version",
    }
)
# Besides its columns, a version's named metrics and tags (models_app.open_metadata), given as maps.
EDITABLE_VERSION_MAPS = frozenset(open_metadata.METADATA_MAPS)
EDITABLE_MODEL_FIELDS = frozenset({"description", "model_type", "is_active", "readme", "metric_directions"})


def _lock_model(model_id: int) -> RegisteredModel:
    """Lock the model's row. A request that held the lock before us may have deleted the model since
    the caller looked it up: that is a 404 (the second of two deletes, a write racing a delete)."""
    model = _LOCKED_MODEL.first(pk=model_id)
    if model is None:
        raise NotFound("The model no longer exists: another request deleted it meanwhile.")
    return model


# The registration's reads, their SQL compiled once (registry_site.prepared): registering a version spent
# more CPU compiling its queries than running them (issue #12).
_LOCKED_MODEL = PreparedQuery(
    lambda pk: RegisteredModel.objects.select_for_update().filter(pk=pk), "pk", markers={"pk": ID_MARKER}
)
_VERSION_OF = PreparedQuery(
    lambda model_id, version: ModelVersion.objects.select_related("model", "artifact").filter(
        model_id=model_id, version=version
    ),
    "model_id",
    "version",
    markers={"model_id": ID_MARKER},
)
_LOCKED_ARTIFACT = PreparedQuery(lambda sha256: Artifact.objects.select_for_update().filter(sha256=sha256), "sha256")
_DEFAULT_OF = PreparedQuery(
    lambda model_id: ModelVersion.objects.filter(model_id=model_id, is_default=True).only("pk")[:1],
    "model_id",
    markers={"model_id": ID_MARKER},
)


def _has_active_deployment(version_filter: Q) -> bool:
    return Deployment.objects.filter(version_filter, deployment_status=DeploymentStatus.ACTIVE).exists()


def _record_metric_history(version: ModelVersion, changed: dict[str, list]) -> None:
    """The one place a version's metrics, as registered or changed, enter its history: a point (source
    `registration`) for each of the seed's five and each named metric whose value `changed` ({field:
    [before, after]}) sets. register_version and update_version call it, so the API, the admin and the
    commands all record them."""
    metrics = {name: changed[name][1] for name in METRIC_FIELDS if name in changed}
    if "metrics" in changed:
        before, after = changed["metrics"]
        metrics.update({name: value for name, value in after.items() if (before or {}).get(name) != value})
    if metrics:
        metric_history.record_registered(version=version, metrics=metrics)


def _audit_model(action: str, model: RegisteredModel, changes: dict[str, Any]) -> None:
    audit.record(action, object_type="model", object_repr=model.name, model_name=model.name, changes=changes)


def _audit_version(action: str, version: ModelVersion, changes: dict[str, Any]) -> None:
    audit.record(
        action,
        object_type="version",
        object_repr=f"{version.model.name}:{version.version}",
        model_name=version.model.name,
        changes=changes,
    )


# --- Models -----------------------------------------------------------------------------------------
def create_model(
    *,
    name: str,
    model_type: str,
    description: str = "",
    is_active: bool = True,
    readme: str = "",
    metric_directions: dict[str, str] | None = None,
) -> RegisteredModel:
    values = clean_fields(
        RegisteredModel,
        {
            "name": name,
            "model_type": model_type,
            "description": description,
            "is_active": is_active,
            "readme": readme,
            "metric_directions": metric_directions or {},
        },
    )
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(**values)
            _audit_model("create", model, {key: value for key, value in values.items() if key != "name"})
            return model
    except IntegrityError:
        if RegisteredModel.objects.filter(name=name).exists():
            raise Conflict(f"A model named '{name}' already exists.", field="name") from None
        raise


def update_model(*, model: RegisteredModel, changes: dict[str, Any]) -> RegisteredModel:
    unknown = set(changes) - EDITABLE_MODEL_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"'{field}' cannot be changed.", field=field)
    changes = clean_fields(RegisteredModel, changes)
    with transaction.atomic():
        _lock_model(model.pk)  # a concurrent delete: 404, not a save that updates no row
        # From the database: a caller (the admin's form) may already have changed the instance it holds.
        before = RegisteredModel.objects.filter(pk=model.pk).values(*changes).get() if changes else {}
        for field, value in changes.items():
            setattr(model, field, value)
        model.save(update_fields=[*changes, "updated_at"])
        _audit_model("update", model, audit.diff(before, changes))
    return model


@transaction.atomic
def delete_model(*, model: RegisteredModel) -> None:
    """Delete a model with its versions and deployment history, unless it is deployed somewhere now.
    Its stored files go too once this commits, except those another model's version shares."""
    model = _lock_model(model.pk)
    if _has_active_deployment(Q(model=model)):
        raise Conflict(f"Model '{model.name}' has an active deployment; roll it back before deleting the model.")
    versions = list(model.versions.values_list("version", flat=True))
    files = set(model.versions.exclude(artifact=None).values_list("artifact_id", flat=True))
    model.delete()
    _reclaim_when_committed(files)
    _audit_model("delete", model, {"versions": versions})


# --- Versions ---------------------------------------------------------------------------------------
def clean_version_fields(**values: Any) -> dict[str, Any]:
    """A new version's fields by the model's rules (InvalidInput naming each bad one), before any byte of
    its file is received or stored. register_version applies it; a caller with a large file at hand
    asks first, so a typo costs no hashing."""
    unknown = set(values) - EDITABLE_VERSION_FIELDS - EDITABLE_VERSION_MAPS - {"version", "format"}
    if unknown:
        raise InvalidInput(f"Unknown version field '{sorted(unknown)[0]}'.", field=sorted(unknown)[0])
    maps = open_metadata.clean_maps(values, change=False)
    columns = {key: value for key, value in values.items() if key not in EDITABLE_VERSION_MAPS}
    return {**clean_fields(ModelVersion, columns), **maps}


def _check_version_string(version: str) -> None:
    if version.lower() in RESERVED_VERSIONS:
        raise InvalidInput(f"'{version}' is reserved and cannot be a version.", field="version")


def _check_declared_digest(upload: HashedUpload, declared_sha256: str | None) -> None:
    if declared_sha256 and declared_sha256.lower() != upload.sha256:
        raise InvalidInput(
            f"The file's sha256 is {upload.sha256}, not the declared {declared_sha256}; nothing was stored.",
            field="sha256",
        )


def _check_format(upload: HashedUpload, declared_format: str) -> FormatCheck:
    check = check_format(declared_format, upload.temporary_file_path())
    if check.result == "failed" and settings.REGISTRY_REJECT_FORMAT_MISMATCH:
        raise InvalidInput(
            f"The file does not look like {declared_format}: {check.detail}; nothing was stored.", field="file"
        )
    return check


@contextmanager
def _stored(upload: HashedUpload | None) -> Iterator[None]:
    """Store the upload's bytes (outside any transaction: a large file takes minutes) for the block to
    link; if the block fails (a lost race, a rule, the database), remove them again unless a version
    references them, so a refused request leaves no file behind (maintenance.remove_if_orphaned)."""
    if upload is None:
        yield
        return
    try:
        artifacts.put_file(upload)
        yield
    except BaseException:
        key = artifacts.storage_key_for(upload.sha256)
        try:
            maintenance.remove_if_orphaned(key)
        except Exception:  # the refusal is the answer; what is left, gc_artifacts removes
            logger.exception("could not remove %s after a refused upload", key)
        raise


def _link_artifact(upload: HashedUpload) -> Artifact:
    """Inside the version's transaction, once _stored put the bytes in storage (outside it): the
    artifact's row, under the content's lock, so no clean-up can remove the bytes before this
    transaction commits. A clean-up (a concurrent refusal of the same bytes, gc_artifacts) that came
    first removed the file together with any row: then store it again from the staged copy, which
    storing leaves in place until the request ends."""
    artifacts.lock_content(upload.sha256)
    key = artifacts.storage_key_for(upload.sha256)
    # Under the content's lock no other transaction can add this row meanwhile (only this function does):
    # a look-up, then an insert when there is none, with no savepoint for a race that cannot happen.
    artifact = _LOCKED_ARTIFACT.first(sha256=upload.sha256)
    if artifact is None:
        artifact = Artifact.objects.create(sha256=upload.sha256, size=upload.size, storage_key=key)
        if not artifacts.exists(key):
            artifacts.put_file(upload)
    return artifact


def _reclaim_when_committed(artifact_ids: set[str]) -> None:
    """After a deletion commits, remove the files it left unreferenced, so that verify_artifacts does
    not find them orphaned; if this fails (the process ends, the storage is down) gc_artifacts will."""
    for sha256 in sorted(artifact_ids):
        transaction.on_commit(partial(maintenance.remove_if_orphaned, artifacts.storage_key_for(sha256)), robust=True)


@dataclass(frozen=True)
class Registration:
    version: ModelVersion
    created: bool  # False: the version was already registered with this very content (a re-sent request)


# A version's lifecycle moves on after it is registered (someone approves it, another version becomes the
# default): a re-sent registration neither compares nor resets it. The mvr client's push draws the same line.
LIFECYCLE_FIELDS = frozenset({"status"})


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _registered_value(existing: ModelVersion, field: str, stated: Any) -> Any:
    """The registered value to compare with what a registration states. Of the named metrics and tags,
    only the names it states: a name added later (PATCH) does not make a retry differ."""
    if field in EDITABLE_VERSION_MAPS:
        registered = open_metadata.metrics_of(existing) if field == "metrics" else open_metadata.tags_of(existing)
        return {name: registered.get(name) for name in stated}
    return getattr(existing, field)


def _differences(existing: ModelVersion, upload: HashedUpload | None, stated: dict[str, Any]) -> dict[str, str]:
    """What a registration states that the registered version has otherwise: {field: how}. Only what the
    request states is compared (a field it leaves out may hold anything), each value as the rules clean
    it (the form's "0.95" is the number 0.95; a JSON object's key order does not count)."""
    differences = {
        field: f"registered as {_shown(registered)}, sent {_shown(value)}"
        for field, value in stated.items()
        if field not in LIFECYCLE_FIELDS and (registered := _registered_value(existing, field, value)) != value
    }
    if upload is not None and existing.artifact_id != upload.sha256:
        differences["file"] = (
            f"registered with sha256 {existing.artifact_id}, sent {upload.sha256}"
            if existing.artifact_id
            else f"registered without a file (attach one with PUT .../versions/{existing.version}/file), "
            f"sent one with sha256 {upload.sha256}"
        )
    return differences


def _registered_already(
    model: RegisteredModel, version: str, upload: HashedUpload | None, stated: dict[str, Any]
) -> Registration | None:
    """The version as registered, when the request says nothing it does not already have (a retry, a
    re-run CI job); a 409 naming every field that differs when it does; None when there is no such
    version yet."""
    existing = _VERSION_OF.first(model_id=model.pk, version=version)  # unique: (model, version)
    if existing is None:
        return None
    differences = _differences(existing, upload, stated)
    if differences:
        listed = "; ".join(f"{field}: {how}" for field, how in differences.items())
        raise Conflict(
            f"Version '{version}' of model '{model.name}' already exists with other content ({listed}). "
            "A version's file and format never change: register a new version (or PATCH its other fields).",
            errors={
                "version": [f"Version '{version}' already exists with other content."],
                **{field: [how] for field, how in differences.items()},
            },
        )
    return Registration(existing, created=False)


def register_version(
    *,
    model: RegisteredModel,
    version: str,
    format: str,
    upload: HashedUpload | None = None,
    declared_sha256: str | None = None,
    make_default: bool = False,
    **fields: Any,
) -> Registration:
    """Register a new version of `model`, with its file when one is given.

    The file is stored before the row is written and outside the transaction; the row is written only
    once the file is whole. If the row cannot be written (a concurrent request registered the same
    version first), the stored file is removed again unless another version references it.
    The model's first version with a file becomes its default; a version without one never is.

    Registering a version that exists is idempotent: when the request states the same file (sha256) and
    the same values for every field it gives (`status` and `make_default` aside: see LIFECYCLE_FIELDS),
    the answer is the registered version with created=False, and nothing is stored, changed or audited;
    otherwise a Conflict names each field that differs.
    """
    fields = clean_version_fields(version=version, format=format, **fields)
    version, format = fields.pop("version"), fields.pop("format")
    maps = {name: fields.pop(name) for name in EDITABLE_VERSION_MAPS if name in fields}
    _check_version_string(version)
    if fields.get("status") == VersionStatus.ARCHIVED and make_default:
        raise Conflict("An archived version cannot be the default.", field="is_default")
    if make_default and upload is None:
        raise Conflict(
            f"Version '{version}' cannot be the default without a file: send it in the same request, or "
            f"register it, attach the file with PUT /models/{model.name}/versions/{version}/file, then make it "
            "the default.",
            field="is_default",
        )
    if upload is not None:
        _check_declared_digest(upload, declared_sha256)
    stated = {"format": format, **fields, **maps}
    # Before any byte is moved into storage: a re-sent registration stores nothing.
    if (registered := _registered_already(model, version, upload, stated)) is not None:
        return registered

    check = _check_format(upload, format) if upload is not None else FormatCheck("", "")

    try:
        with _stored(upload), transaction.atomic():
            model = _lock_model(model.pk)
            # A concurrent request registered it meanwhile: the same content is its answer too (its file
            # is these very bytes, so what _stored put there stays), other content is a 409 (and the
            # bytes go again, unless referenced).
            if (registered := _registered_already(model, version, upload, stated)) is not None:
                return registered
            has_default = bool(_DEFAULT_OF.all(model_id=model.pk))
            # A default is what `.../versions/default/file` serves, so only a version with a file can be
            # it: the first version with a file becomes the default (attach_file does the same later).
            is_default = (
                upload is not None
                and (make_default or not has_default)
                and fields.get("status") != VersionStatus.ARCHIVED
            )
            if is_default and has_default:
                ModelVersion.objects.filter(model=model, is_default=True).update(is_default=False)
            created = ModelVersion.objects.create(
                model=model,
                version=version,
                format=format,
                artifact=_link_artifact(upload) if upload is not None else None,
                file_name=upload.name if upload is not None else "",
                format_check=check.result,
                format_check_detail=check.detail,
                is_default=is_default,
                **fields,
            )
            for name, values in maps.items():
                open_metadata.write(created, name, dict(sorted(values.items())))
            _record_metric_history(created, {name: [None, value] for name, value in {**fields, **maps}.items()})
            _audit_version(
                "create",
                created,
                {
                    "format": format,
                    "is_default": is_default,
                    **_jsonable(fields),
                    **_jsonable(maps),
                    **_file_facts(created),
                },
            )
            return Registration(created, created=True)
    except IntegrityError:
        # Only reachable where row locks do not serialize writers; the unique constraint decides.
        if (registered := _registered_already(model, version, upload, stated)) is not None:
            return registered
        raise


def attach_file(*, version: ModelVersion, upload: HashedUpload, declared_sha256: str | None = None) -> ModelVersion:
    """Give a version registered without a file its file. A version's file, once stored, never changes."""
    if version.artifact_id:
        raise Conflict(
            f"Version '{version.version}' already has its file (sha256 {version.artifact_id}); "
            "a version's file never changes: register a new version instead.",
            field="file",
        )
    _check_declared_digest(upload, declared_sha256)
    check = _check_format(upload, version.format)
    with _stored(upload), transaction.atomic():
        _lock_model(version.model_id)
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.artifact_id:
            raise Conflict(f"Version '{version.version}' already has its file.", field="file")
        locked.artifact = _link_artifact(upload)
        locked.file_name = upload.name
        locked.format_check, locked.format_check_detail = check.result, check.detail
        # The model's first file makes its version the default (a version without one never was).
        becomes_default = (
            locked.status != VersionStatus.ARCHIVED
            and not ModelVersion.objects.filter(model_id=locked.model_id, is_default=True).exists()
        )
        locked.is_default = locked.is_default or becomes_default
        locked.save(
            update_fields=["artifact", "file_name", "format_check", "format_check_detail", "is_default", "updated_at"]
        )
        _audit_version("upload", locked, {**_file_facts(locked), **({"is_default": True} if becomes_default else {})})
    return locked


@transaction.atomic
def set_default_version(*, version: ModelVersion) -> ModelVersion:
    """Make `version` its model's default, clearing the previous default in the same transaction."""
    _lock_model(version.model_id)
    version = ModelVersion.objects.select_related("model", "artifact").get(pk=version.pk)
    if version.status == VersionStatus.ARCHIVED:
        raise Conflict(f"Version '{version.version}' is archived and cannot be the default.", field="is_default")
    if not version.artifact_id:
        raise Conflict(
            f"Version '{version.version}' has no file, and the default must have one: attach it first with "
            f"PUT /models/{version.model.name}/versions/{version.version}/file.",
            field="is_default",
        )
    if not version.is_default:
        previous = ModelVersion.objects.filter(model_id=version.model_id, is_default=True).first()
        ModelVersion.objects.filter(model_id=version.model_id, is_default=True).update(is_default=False)
        version.is_default = True
        version.save(update_fields=["is_default", "updated_at"])
        _audit_version("set_default", version, {"previous_default": previous.version if previous else None})
    return version


@transaction.atomic
def update_version(*, version: ModelVersion, changes: dict[str, Any]) -> ModelVersion:
    """Change a version's metadata. `is_default: true` makes it the default; archiving is refused while
    the version is the default or deployed."""
    changes = dict(changes)
    make_default = changes.pop("is_default", None)
    unknown = set(changes) - EDITABLE_VERSION_FIELDS - EDITABLE_VERSION_MAPS
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"'{field}' cannot be changed after a version is registered.", field=field)
    if make_default is False:
        raise InvalidInput(
            "A model keeps a default version: make another version the default instead of unsetting this one.",
            field="is_default",
        )
    # `metrics` and `tags` are merge patches: the names given are set, null removes one, others stay.
    patches = open_metadata.clean_maps(changes, change=True)
    changes = clean_fields(ModelVersion, {k: v for k, v in changes.items() if k not in EDITABLE_VERSION_MAPS})

    _lock_model(version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if "format" in changes and changes["format"] != version.format and version.artifact_id:
        raise Conflict(
            "The format describes the stored file, which never changes; register a new version instead.",
            field="format",
        )
    if changes.get("status") == VersionStatus.ARCHIVED and version.status != VersionStatus.ARCHIVED:
        if version.is_default or make_default:
            raise Conflict(
                f"Version '{version.version}' is the default; make another version the default before archiving it.",
                field="status",
            )
        if _has_active_deployment(Q(model_version=version)):
            raise Conflict(
                f"Version '{version.version}' is deployed; roll it back before archiving it.", field="status"
            )
    before = {field: getattr(version, field) for field in changes}
    for field, value in changes.items():
        setattr(version, field, value)
    for field, patch in patches.items():
        before[field] = open_metadata.current(version, field)
        changes[field] = open_metadata.merge(before[field], patch, field=field)
    changed = audit.diff(before, changes)
    for field in patches:
        if field in changed:
            open_metadata.write(version, field, changes[field])
    _record_metric_history(version, changed)
    columns = [field for field in changes if field not in patches]
    if columns or changed:
        version.save(update_fields=[*columns, "updated_at"])
        archived = changes.get("status") == VersionStatus.ARCHIVED and before["status"] != VersionStatus.ARCHIVED
        _audit_version("archive" if archived else "update", version, changed)
    if make_default:
        version = set_default_version(version=version)
    return version


@transaction.atomic
def delete_version(*, version: ModelVersion) -> None:
    """Delete a version that was never deployed and is not the default. Its file stays while another
    version shares it, and otherwise goes once this commits."""
    _lock_model(version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_default:
        raise Conflict(
            f"Version '{version.version}' is the default; make another version the default first, or archive it."
        )
    if Deployment.objects.filter(model_version=version).exists():
        raise Conflict(
            f"Version '{version.version}' has deployment history, which the registry keeps; archive it instead."
        )
    tested = Variant.objects.filter(version=version).values_list("experiment_id", flat=True).first()
    if tested is not None:
        raise Conflict(
            f"Version '{version.version}' is a variant of experiment {tested}, whose record the registry keeps; "
            "archive it instead."
        )
    facts = _file_facts(version)
    version.delete()
    _audit_version("delete", version, facts)
    _reclaim_when_committed({version.artifact_id} if version.artifact_id else set())


def _file_facts(version: ModelVersion) -> dict[str, Any]:
    if not version.artifact_id:
        return {}
    return {"checksum": version.artifact_id, "file_size": version.file_size, "file_name": version.file_name}


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value not in (None, "", {})}
