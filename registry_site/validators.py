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
