"""A version's open metadata (issue #9): its named metrics and its tags, kept one row per name in
VersionMetric and VersionTag. The services (models_app.services) call these helpers inside their own
transaction, after the model's row is locked; the rule of each name and value is in
registry_site.validators, in one place for the API, the admin, the commands and the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError

from models_app.models import ModelVersion, VersionMetric, VersionTag
from registry_site.errors import InvalidInput
from registry_site.validators import MAX_METRICS_PER_VERSION, MAX_TAGS_PER_VERSION, clean_metrics, clean_tags

# What register_version and update_version take besides the version's own columns.
METADATA_MAPS = ("metrics", "tags")


def metrics_of(version: ModelVersion) -> dict[str, float]:
    """The version's named metrics, by name: from the map its query read (models_app.selectors), or the
    rows (prefetched, or one query)."""
    read: Any = getattr(version, "metric_map", _NOT_READ)
    if read is not _NOT_READ:
        return {name: float(value) for name, value in sorted((read or {}).items())}
    return {row.name: row.value for row in _rows(version, "metric_values")}


def tags_of(version: ModelVersion) -> dict[str, str]:
    read: Any = getattr(version, "tag_map", _NOT_READ)
    if read is not _NOT_READ:
        return dict(sorted((read or {}).items()))
    return {row.key: row.value for row in _rows(version, "tag_values")}


_NOT_READ = object()


def _rows(version: ModelVersion, relation: str) -> list:
    if version.pk is None:
        return []
    rows = list(getattr(version, relation).all())  # prefetched, or one query
    return sorted(rows, key=lambda row: row.name if relation == "metric_values" else row.key)


def clean_maps(values: dict[str, Any], *, change: bool) -> dict[str, dict]:
    """`metrics` and `tags` among `values`, by their rules: InvalidInput naming the field. In a change,
    null removes a name (a JSON merge patch); at registration every value must be given."""
    cleaned: dict[str, dict] = {}
    cleaners: dict[str, Callable[..., dict]] = {"metrics": clean_metrics, "tags": clean_tags}
    errors = {}
    for field in METADATA_MAPS:
        if field not in values:
            continue
        try:
            cleaned[field] = cleaners[field](values[field], allow_null=change)
        except ValidationError as exc:
            errors[field] = exc.messages
    if errors:
        raise InvalidInput(f"Invalid input: {'; '.join(f'{k}: {v[0]}' for k, v in errors.items())}", errors=errors)
    return cleaned


def merge(current: dict[str, Any], patch: dict[str, Any], *, field: str) -> dict[str, Any]:
    """`current` changed by `patch` (null removes a name), within the per-version limit."""
    merged = {**current, **patch}
    merged = {name: value for name, value in merged.items() if value is not None}
    limit = MAX_METRICS_PER_VERSION if field == "metrics" else MAX_TAGS_PER_VERSION
    if len(merged) > limit:
        raise InvalidInput(f"At most {limit} {field} per version (this change makes {len(merged)}).", field=field)
    return dict(sorted(merged.items()))


def write(version: ModelVersion, field: str, values: dict[str, Any]) -> None:
    """Make the version's rows of `field` exactly `values` (few rows: the limits above)."""
    if field == "metrics":
        VersionMetric.objects.filter(version=version).delete()
        VersionMetric.objects.bulk_create(
            VersionMetric(version=version, model_id=version.model_id, name=name, value=value)
            for name, value in values.items()
        )
    else:
        VersionTag.objects.filter(version=version).delete()
        VersionTag.objects.bulk_create(
            VersionTag(version=version, model_id=version.model_id, key=key, value=value)
            for key, value in values.items()
        )


def current(version: ModelVersion, field: str) -> dict[str, Any]:
    """From the database (under the caller's lock), never from rows a caller may have prefetched."""
    if field == "metrics":
        return dict(VersionMetric.objects.filter(version=version).order_by("name").values_list("name", "value"))
    return dict(VersionTag.objects.filter(version=version).order_by("key").values_list("key", "value"))
