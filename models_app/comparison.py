"""Versions side by side (issue #9, comparison): the facts of each, every metric with its difference from
the first version (the baseline) and which is better, whether each is a drop-in replacement for the
baseline, and what changed in its training configuration. One function for the API's two routes and the
admin's comparison page."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

from models_app import metric_history, open_metadata, selectors
from models_app.models import METRIC_FIELDS, ModelVersion, RegisteredModel
from registry_site.errors import InvalidInput

MIN_VERSIONS, MAX_VERSIONS = 2, 20
HIGHER, LOWER = "higher", "lower"
# Metric names that are better lower unless the model says otherwise (RegisteredModel.metric_directions):
# losses, errors and latencies, and the usual error measures. Every other metric is better higher.
LOWER_IS_BETTER = ("*loss*", "*latency*", "*error*", "*mse*", "*mae*", "*perplexity*", "*_time*", "*duration*")


def metric_direction(model: RegisteredModel, name: str) -> str:
    """Is a higher or a lower value of `name` better, for `model`: its own setting first, then the name."""
    chosen = (model.metric_directions or {}).get(name)
    if chosen in (HIGHER, LOWER):
        return chosen
    if name in METRIC_FIELDS:
        return HIGHER
    folded = name.lower()
    return LOWER if any(fnmatch.fnmatchcase(folded, pattern) for pattern in LOWER_IS_BETTER) else HIGHER


def metrics_of(version: ModelVersion) -> dict[str, float]:
    """The seed's five (those set) and the named metrics, by name."""
    seed = {name: getattr(version, name) for name in METRIC_FIELDS if getattr(version, name) is not None}
    return {**seed, **open_metadata.metrics_of(version)}


def metric_order(name: str) -> tuple[bool, str]:
    """The seed's five first, then the named metrics by name."""
    return (name not in METRIC_FIELDS, name)


@dataclass(frozen=True)
class Entry:
    """A version in the comparison and how the caller named it (`default`, `@production`, `resnet:v3`)."""

    asked: str
    version: ModelVersion


def resolve(model_name: str, refs: list[str], *, field: str = "versions") -> list[Entry]:
    """The versions of one model that `refs` name, in order (selectors.resolve_version's names)."""
    check_count(refs, field=field)
    return [Entry(ref, selectors.resolve_version(model_name, ref)) for ref in refs]


def resolve_across_models(refs: list[str], *, field: str = "versions") -> list[Entry]:
    """`model:version` references, each of any model."""
    check_count(refs, field=field)
    entries = []
    for ref in refs:
        model_name, sep, version_ref = ref.partition(":")
        if not sep or not model_name or not version_ref:
            raise InvalidInput(f"{field}: '{ref}' is not MODEL:VERSION.", field=field)
        entries.append(Entry(ref, selectors.resolve_version(model_name, version_ref)))
    return entries


def check_count(refs: list[str], *, field: str) -> None:
    if not MIN_VERSIONS <= len(refs) <= MAX_VERSIONS:
        raise InvalidInput(
            f"{field}: compare {MIN_VERSIONS} to {MAX_VERSIONS} versions, separated by commas (got {len(refs)}).",
            field=field,
        )
    if any(not ref.strip() for ref in refs):
        raise InvalidInput(f"{field}: an empty name between commas.", field=field)
    twice = sorted({ref for ref in refs if refs.count(ref) > 1})
    if twice:
        raise InvalidInput(f"{field}: '{twice[0]}' is named twice; name each version once.", field=field)


@dataclass(frozen=True)
class Window:
    """Compare what the versions did, their metric history's points, over the last `window` (all of them:
    None), from `source` only when given, aggregated by `agg`, instead of their registered metrics."""

    window: str | None = None  # as asked: 24h, 7d
    source: str | None = None
    agg: str = "avg"

    def values(self, version: ModelVersion) -> tuple[dict[str, float], dict[str, int]]:
        span = metric_history.parse_duration(self.window, field="window") if self.window else None
        return metric_history.window_values(version=version, window=span, source=self.source, agg=self.agg)


def compare(entries: list[Entry], *, window: Window | None = None) -> dict[str, Any]:
    """The comparison of `entries`, the first being the baseline: of their registered metrics, or of their
    metric history over `window`."""
    baseline = entries[0].version
    if window is None:
        metrics = [metrics_of(entry.version) for entry in entries]
        counts: list[dict[str, int] | None] = [None] * len(entries)
    else:
        metrics, counts = map(list, zip(*(window.values(entry.version) for entry in entries), strict=True))
    return {
        "baseline": entries[0].asked,
        "basis": {"kind": "registered", "window": None, "source": None, "agg": None}
        if window is None
        else {"kind": "history", "window": window.window, "source": window.source, "agg": window.agg},
        "versions": [
            _facts(entry, values, points) for entry, values, points in zip(entries, metrics, counts, strict=True)
        ],
        "metrics": _metric_rows(entries, metrics),
        "compatibility": [_compatibility(baseline, entry) for entry in entries[1:]],
        "training_config": [
            {"version": entry.asked, **config_diff(baseline.training_config, entry.version.training_config)}
            for entry in entries[1:]
        ],
    }


def _facts(entry: Entry, metrics: dict[str, float], points: dict[str, int] | None) -> dict[str, Any]:
    version = entry.version
    artifact = version.artifact if version.artifact_id else None
    return {
        "asked": entry.asked,
        "model": version.model.name,
        "version": version.version,
        "status": version.status,
        "format": version.format,
        "file_size": artifact.size if artifact else None,
        "sha256": artifact.sha256 if artifact else None,
        "format_check": version.format_check,
        "deployed_to": selectors.deployed_targets(version),
        "is_default": version.is_default,
        "created_at": version.created_at,
        "metrics": metrics,
        "points": points,
    }


def _metric_rows(entries: list[Entry], metrics: list[dict[str, float]]) -> list[dict[str, Any]]:
    names = sorted({name for values in metrics for name in values}, key=metric_order)
    rows = []
    for name in names:
        # Across models a metric's direction is the first version's model's.
        direction = metric_direction(entries[0].version.model, name)
        values = [values.get(name) for values in metrics]
        present = [value for value in values if value is not None]
        best_value = (max if direction == HIGHER else min)(present)
        base = values[0]
        rows.append(
            {
                "name": name,
                "direction": direction,
                "values": {entry.asked: value for entry, value in zip(entries, values, strict=True)},
                "best": [entry.asked for entry, value in zip(entries, values, strict=True) if value == best_value],
                "differences": [
                    _difference(entry.asked, base, value, direction)
                    for entry, value in zip(entries[1:], values[1:], strict=True)
                ],
            }
        )
    return rows


def _difference(asked: str, base: float | None, value: float | None, direction: str) -> dict[str, Any]:
    if base is None or value is None:
        return {"version": asked, "absolute": None, "relative": None, "better": None}
    absolute = value - base
    relative = absolute / abs(base) if base else None
    better = None if math.isclose(value, base, rel_tol=0, abs_tol=1e-12) else (absolute > 0) == (direction == HIGHER)
    return {"version": asked, "absolute": absolute, "relative": relative, "better": better}


def _compatibility(baseline: ModelVersion, entry: Entry) -> dict[str, Any]:
    version = entry.version
    same = {
        "same_format": version.format == baseline.format,
        "same_input_shape": version.input_shape == baseline.input_shape,
        "same_output_shape": version.output_shape == baseline.output_shape,
    }
    return {"version": entry.asked, "drop_in": all(same.values()), **same}


def config_diff(before: Any, after: Any) -> dict[str, Any]:
    """What changed from `before` to `after` (two training configurations): keys added, removed and
    changed, nested objects compared key by key and named by their dotted path."""
    added: dict[str, Any] = {}
    removed: dict[str, Any] = {}
    changed: dict[str, dict[str, Any]] = {}

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(old.keys() | new.keys()):
                where = f"{path}.{key}" if path else key
                if key not in new:
                    removed[where] = old[key]
                elif key not in old:
                    added[where] = new[key]
                else:
                    walk(old[key], new[key], where)
        elif old != new or isinstance(old, bool) != isinstance(new, bool):  # True == 1 in Python, not in JSON
            changed[path or "."] = {"from": old, "to": new}

    walk(before if before is not None else {}, after if after is not None else {}, "")
    return {"added": added, "removed": removed, "changed": changed}
