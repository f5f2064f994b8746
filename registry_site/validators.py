"""The rules of the registry's field values, written once and attached to the model fields they govern.
(Their error codes are their own: a model form replaces the message of a code its field also knows, such
as "invalid".)

The API's serializers (ModelSerializer copies a model field's validators), the admin's model forms
(which run the model's own validation) and the services (clean_fields, before anything is written) all
apply these, so every front door accepts the same values and refuses the others with the same message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from registry_site.errors import InvalidInput, flatten
from registry_site.json_values import deeper_than, has_non_finite_number, has_unstorable_text

MAX_JSON_OBJECT_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_SHAPE_RANK = 16
MAX_DIMENSION = 2**31 - 1

UNSTORABLE_MESSAGE = "Contains a NUL character or a lone UTF-16 surrogate, which cannot be stored."
SHAPE_MESSAGE = (
    "Must be a list of 1 to 16 dimensions, each a positive integer, -1 or null (dynamic), such as [1,3,224,224]."
)

validate_sha256_hex = RegexValidator(r"^[0-9a-fA-F]{64}$", "Must be 64 hexadecimal digits.")

# --- Open metadata: named metrics, tags, lineage (issue #9) ------------------------------------------
# The one rule for a metric's name and a tag's key. Both become query parameters (?metric.auc__gte=0.9,
# ?tag.team=vision), so the alphabet is conservative: a letter, then letters, digits, '_', '.', '-'. No
# '__' anywhere, which separates a name from its lookup. "$(?!\n)" as in models.NAME_PATTERN: the pattern
# also goes into the OpenAPI schema, where it must be an ECMAScript regex.
METRIC_NAME_PATTERN = r"^(?!.*__)[A-Za-z][A-Za-z0-9_.\-]{0,63}$(?!\n)"
# The same name inside a longer pattern (the list's dynamic `metric.<name>__<lookup>` parameters): no
# lookahead over the rest of the text, so a lookup's '__' may follow; its '_' is never followed by another.
METRIC_NAME_IN_PATTERN = r"[A-Za-z](?:[A-Za-z0-9.\-]|_(?!_)){0,63}"
METRIC_NAME_RULE = "1-64 ASCII letters, digits, '_', '.' or '-', starting with a letter, without '__'"
TAG_KEY_PATTERN = METRIC_NAME_PATTERN
MAX_METRICS_PER_VERSION = 100
MAX_TAGS_PER_VERSION = 100
MAX_TAG_VALUE_LENGTH = 1000
# The seed's five metrics have fields of their own (in [0, 1]); the open ones are any other name.
SEED_METRIC_NAMES = ("accuracy", "precision", "recall", "f1_score", "mAP")
# Lineage: where a version came from. Identifiers, not prose: one line, bounded.
LINEAGE_FIELDS = ("training_run", "code_commit", "dataset_name", "dataset_version")
validate_one_line = RegexValidator(
    r"^[^\x00-\x1f\x7f-\x9f]*$(?!\n)", "One line of text, without control characters.", code="one_line"
)
# Values an operator adds to the formats and model types (REGISTRY_EXTRA_FORMATS...): the shape the
# database checks, since the list itself is a setting and may grow without a migration.
CHOICE_VALUE_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,31}$(?!\n)"
CHOICE_VALUE_SHAPE = r"\A[a-z0-9][a-z0-9_.\-]{0,31}\Z"  # the database's CHECK (PostgreSQL and Python regexes)

_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_TAG_VALUE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_metric_name(name: Any) -> bool:
    return isinstance(name, str) and _METRIC_NAME.match(name) is not None


def metric_value(value: Any) -> float:
    """A metric's value as a float: a JSON number (not true/false, not text), finite (1e400 parses to
    infinity), any range. ValueError saying why otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {type(value).__name__ if value is not None else 'null'}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("must be a finite number (this one is out of range)") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number, not NaN or infinity")
    return number


def _check_map(value: Any, *, what: str, limit: int) -> None:
    if not isinstance(value, dict):
        raise ValidationError(f'Must be a JSON object of {what}, such as {{"name": ...}}.', code="not_object")
    if len(value) > limit:
        raise ValidationError(f"At most {limit} {what} per version ({len(value)} given).", code="too_many")
    for key in value:
        if not is_metric_name(key):
            shown = key if len(key) <= 80 else key[:80] + "..."
            raise ValidationError(f"{shown!r} is not a valid name: use {METRIC_NAME_RULE}.", code="bad_name")


def clean_metrics(value: Any, *, allow_null: bool = False) -> dict[str, float | None]:
    """Named metrics ({"auc": 0.91, "val.loss": 0.3}): names by METRIC_NAME_PATTERN, values finite
    numbers of any range. The seed's five are fields of their own and cannot hide in here. `allow_null`:
    a change (PATCH) removes a metric by giving it null."""
    _check_map(value, what="metrics", limit=MAX_METRICS_PER_VERSION)
    cleaned: dict[str, float | None] = {}
    for name, number in value.items():
        if name in SEED_METRIC_NAMES:
            raise ValidationError(
                f"{name!r} is one of the seed's metrics, a field of its own: give it as '{name}'.", code="seed_metric"
            )
        if number is None and allow_null:
            cleaned[name] = None
            continue
        try:
            cleaned[name] = metric_value(number)
        except ValueError as exc:
            hint = " (null removes a metric only when changing a version)" if number is None else ""
            raise ValidationError(f"{name!r} {exc}{hint}.", code="bad_value") from None
    return cleaned


def clean_tags(value: Any, *, allow_null: bool = False) -> dict[str, str | None]:
    """String tags ({"team": "vision"}), like MLflow's: keys by the metric names' rule, values text of
    1 to MAX_TAG_VALUE_LENGTH characters without control characters. `allow_null`: a change removes a
    tag by giving it null."""
    _check_map(value, what="tags", limit=MAX_TAGS_PER_VERSION)
    cleaned: dict[str, str | None] = {}
    for key, text in value.items():
        if text is None and allow_null:
            cleaned[key] = None
            continue
        if not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            raise ValidationError(f"Tag {key!r} must be text (a JSON string), not {kind}.", code="bad_value")
        if not 1 <= len(text) <= MAX_TAG_VALUE_LENGTH:
            raise ValidationError(
                f"Tag {key!r} must be 1 to {MAX_TAG_VALUE_LENGTH} characters ({len(text)} given).", code="too_long"
            )
        if _TAG_VALUE_CONTROL.search(text):
            raise ValidationError(f"Tag {key!r} must not contain control characters.", code="control")
        cleaned[key] = text
    return cleaned


def validate_metrics(value: Any) -> None:
    clean_metrics(value)


def validate_tags(value: Any) -> None:
    clean_tags(value)


METRIC_DIRECTIONS = ("higher", "lower")


def validate_metric_directions(value: Any) -> None:
    """A model's say on which way its metrics are better ({"ece": "lower"}): metric names (the seed's five
    too) to "higher" or "lower"."""
    if not isinstance(value, dict):
        raise ValidationError('Must be a JSON object such as {"ece": "lower"}.', code="not_object")
    if len(value) > MAX_METRICS_PER_VERSION:
        raise ValidationError(f"At most {MAX_METRICS_PER_VERSION} metrics ({len(value)} given).", code="too_many")
    for name, direction in value.items():
        if not is_metric_name(name):
            raise ValidationError(f"{name[:80]!r} is not a valid name: use {METRIC_NAME_RULE}.", code="bad_name")
        if direction not in METRIC_DIRECTIONS:
            raise ValidationError(f"{name!r} must be 'higher' or 'lower' (which values are better).", code="bad_value")


def validate_finite(value: float) -> None:
    """A number a rule compares with: not NaN or infinity (which compare with nothing)."""
    if not math.isfinite(value):
        raise ValidationError("Must be a finite number, not NaN or infinity.", code="not_finite")


def validate_unit_interval(value: float) -> None:
    """A metric: a finite number in [0, 1] (1e400 parses to infinity; "nan" and "inf" to what they say)."""
    if not math.isfinite(value):
        raise ValidationError("Must be a finite number, not NaN or infinity.", code="not_finite")
    if not 0.0 <= value <= 1.0:
        raise ValidationError("Must be between 0 and 1.", code="range")


def validate_shape(value: Any) -> None:
    """A tensor shape: a list of positive ints, with -1 or null for a dynamic dimension."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SHAPE_RANK:
        raise ValidationError(SHAPE_MESSAGE, code="not_a_shape")
    for dim in value:
        if not (dim is None or (type(dim) is int and (dim == -1 or 1 <= dim <= MAX_DIMENSION))):
            raise ValidationError(SHAPE_MESSAGE, code="not_a_shape")


def validate_json_object(value: Any) -> None:
    """A JSON object (training config, deployment config), bounded in size and depth so one request
    cannot make the registry store or parse a monster, and holding only what a database can store."""
    if not isinstance(value, dict):
        raise ValidationError('Must be a JSON object, such as {"epochs": 90}.', code="not_object")
    if deeper_than(value, MAX_JSON_DEPTH):
        raise ValidationError(f"Must be nested at most {MAX_JSON_DEPTH} levels deep.", code="too_deep")
    if has_non_finite_number(value):
        raise ValidationError(
            "Numbers must be finite (1e400 is out of range; NaN and Infinity are not JSON).", code="not_finite"
        )
    if len(json.dumps(value)) > MAX_JSON_OBJECT_BYTES:
        raise ValidationError(f"Must be at most {MAX_JSON_OBJECT_BYTES} bytes as JSON.", code="too_large")
    if has_unstorable_text(value):
        raise ValidationError(UNSTORABLE_MESSAGE, code="unstorable")


def clean_fields(model: type[models.Model], values: Mapping[str, Any]) -> dict[str, Any]:
    """The model's own rules (type, choices, length and validators of each field) for the values a
    service is about to write, before anything is written: InvalidInput naming every bad field, with the
    messages the API and the admin show for the same values. Returns the values as their fields clean
    them (a metric given as text becomes a number)."""
    candidate = model(**values)
    try:
        candidate.clean_fields(exclude={field.name for field in model._meta.fields if field.name not in values})
    except ValidationError as exc:
        raise InvalidInput(f"Invalid input: {flatten(exc.message_dict)}", errors=exc.message_dict) from None
    return {name: getattr(candidate, name) for name in values}


# A token's limits (registry_site.models.ApiToken). The model pattern is a glob over model names, with
# fnmatch's `*` (any run of characters) and `?` (one character); no `[...]` classes, so the same pattern
# means the same in Python (fnmatchcase) and in the database (a regular expression, for lists).
MODEL_PATTERN_RULE = "1-128 ASCII letters, digits, '_', '-' or '.', with '*' for any run of characters and '?' for one"
model_pattern_validator = RegexValidator(
    r"^[A-Za-z0-9_.\-*?]{0,128}$(?!\n)", f"A model pattern is {MODEL_PATTERN_RULE}.", code="model_pattern"
)
# A target's name, as deployments_app.models.Target's rule says (the core cannot import it).
TARGET_NAME_SHAPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


def validate_target_list(value: str) -> None:
    """Target names separated by commas (`staging,qa`), each a valid target name, none twice."""
    names = value.split(",")
    bad = [name for name in names if not TARGET_NAME_SHAPE.fullmatch(name)]
    if bad:
        raise ValidationError(
            "Target names separated by commas, each 1-64 ASCII letters, digits, '_', '-' or '.', not starting "
            f"with a dot or a dash: {', '.join(repr(name) for name in bad)} is not.",
            code="target_list",
        )
    if len({name.lower() for name in names}) != len(names):
        raise ValidationError("A target is named twice (names are compared ignoring case).", code="target_list")


# --- Webhooks (registry_site.webhooks) ------------------------------------------------------------------
# The event types a subscription may ask for ("*" is all of them). Later features add theirs here.
WEBHOOK_EVENT_TYPES = (
    "model.created",
    "model.updated",
    "model.deleted",
    "version.created",
    "version.updated",
    "version.default_changed",
    "version.deleted",
    "deployment.created",
    "deployment.rolled_back",
    "target.created",
    "target.updated",
    "target.deleted",
    "experiment.created",
    "experiment.started",
    "experiment.paused",
    "experiment.resumed",
    "experiment.stopped",
    "experiment.weights_changed",
    "experiment.concluded",
    "alert.fired",
    "alert.resolved",
    "alert.acknowledged",
)
# whsec_ and standard base64 (padded) of 24 to 65 bytes: 8 to 21 groups of four, and a padded end.
WEBHOOK_SECRET_PATTERN = r"^whsec_(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$(?!\n)"


def validate_webhook_events(value: Any) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError('Must be a non-empty list of event types, or ["*"].', code="webhook_events")
    unknown = [item for item in value if item != "*" and item not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise ValidationError(
            f"Unknown event type '{unknown[0]}'; use \"*\" or any of: {', '.join(WEBHOOK_EVENT_TYPES)}.",
            code="webhook_events",
        )


validate_webhook_secret = RegexValidator(
    WEBHOOK_SECRET_PATTERN,
    "Must be 'whsec_' followed by the base64 of 24 to 64 random bytes.",
    code="webhook_secret",
)


# Promotion policies (deployments_app.models.PromotionPolicy): the rules a version must meet before it
# is deployed to a target. Metric names follow the metrics' own rule (the seed's five included).
MAX_POLICY_METRIC_RULES = 50


def validate_metric_minimums(value: Any) -> None:
    """{"accuracy": 0.9, "auc": 0.85}: each named metric must be at least this value."""
    if not isinstance(value, dict):
        raise ValidationError('Must be a JSON object of minimums, such as {"accuracy": 0.9}.', code="not_object")
    if len(value) > MAX_POLICY_METRIC_RULES:
        raise ValidationError(f"At most {MAX_POLICY_METRIC_RULES} minimums ({len(value)} given).", code="too_many")
    for name, number in value.items():
        if not is_metric_name(name):
            raise ValidationError(f"{str(name)[:80]!r} is not a valid metric name: use {METRIC_NAME_RULE}.")
        try:
            metric_value(number)
        except ValueError as exc:
            raise ValidationError(f"The minimum of {name!r} {exc}.", code="bad_value") from None


REGRESSION_RULE_KEYS = {"metric", "max_drop", "lower_is_better"}


def validate_regression_rules(value: Any) -> None:
    """[{"metric": "auc", "max_drop": 0.01}, {"metric": "latency_ms", "max_drop": 5, "lower_is_better":
    true}]: the version may be worse than the one active on the target by at most `max_drop` (absolute)
    on `metric`; higher is better unless the rule says lower is."""
    if not isinstance(value, list):
        raise ValidationError(
            'Must be a JSON list of rules, such as [{"metric": "auc", "max_drop": 0.01}].', code="not_list"
        )
    if len(value) > MAX_POLICY_METRIC_RULES:
        raise ValidationError(f"At most {MAX_POLICY_METRIC_RULES} rules ({len(value)} given).", code="too_many")
    seen = set()
    for position, rule in enumerate(value):
        where = f"Rule {position + 1}"
        if not isinstance(rule, dict) or not {"metric", "max_drop"} <= set(rule):
            raise ValidationError(f'{where} must be an object with "metric" and "max_drop".', code="bad_rule")
        unknown = sorted(set(rule) - REGRESSION_RULE_KEYS)
        if unknown:
            raise ValidationError(f"{where} has unknown keys: {', '.join(map(str, unknown))}.", code="bad_rule")
        if not is_metric_name(rule["metric"]):
            raise ValidationError(f"{where}: {str(rule['metric'])[:80]!r} is not a valid metric name.")
        if rule["metric"] in seen:
            raise ValidationError(f"{where}: {rule['metric']!r} has a rule already.", code="repeated")
        seen.add(rule["metric"])
        try:
            drop = metric_value(rule["max_drop"])
        except ValueError as exc:
            raise ValidationError(f"{where}: max_drop {exc}.", code="bad_value") from None
        if drop < 0:
            raise ValidationError(f"{where}: max_drop must be 0 or more.", code="bad_value")
        if not isinstance(rule.get("lower_is_better", False), bool):
            raise ValidationError(f"{where}: lower_is_better must be true or false.", code="bad_value")
