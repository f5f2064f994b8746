"""The options of a version's metadata, shared by register_version and update_version: the same names, the
same JSON parsing, and the fields they fill (models_app.services checks them)."""

from __future__ import annotations

from typing import Any

from models_app.models import METRIC_FIELDS
from registry_site.commands import json_argument
from registry_site.validators import LINEAGE_FIELDS

VERSION_METADATA_FIELDS = (
    "status",
    "release_notes",
    "input_shape",
    "output_shape",
    "training_config",
    "metrics",
    "tags",
    *LINEAGE_FIELDS,
    *METRIC_FIELDS,
)


def add_version_metadata_arguments(parser) -> None:
    parser.add_argument("--status")
    parser.add_argument("--release-notes", dest="release_notes")
    parser.add_argument("--input-shape", dest="input_shape", type=json_argument, help="JSON list, e.g. [1,3,224,224]")
    parser.add_argument("--output-shape", dest="output_shape", type=json_argument, help="JSON list, e.g. [1,1000]")
    parser.add_argument("--training-config", dest="training_config", type=json_argument, help="JSON object")
    parser.add_argument("--metrics", type=json_argument, help='named metrics, a JSON object: {"auc": 0.91}')
    parser.add_argument("--tags", type=json_argument, help='tags, a JSON object: {"team": "vision"}')
    for field in LINEAGE_FIELDS:
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field)
    for metric in METRIC_FIELDS:
        parser.add_argument(f"--{metric.lower().replace('_', '-')}", dest=metric, type=float, help="in [0, 1]")


def version_metadata(options: dict[str, Any]) -> dict[str, Any]:
    """The metadata options given (not None)."""
    return {key: options[key] for key in VERSION_METADATA_FIELDS if options.get(key) is not None}
