"""Serializer fields and a serializer mixin that both apps' APIs use. Forms send every value as text (the
seed's multipart form), JSON bodies send typed values: each field accepts both, strictly."""

from __future__ import annotations

import json
import math

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry_site.errors import invalid_choice_message
from registry_site.json_values import deeper_than, has_non_finite_number, has_unstorable_text, parse_json_text

MAX_JSON_OBJECT_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_SHAPE_RANK = 16
MAX_DIMENSION = 2**31 - 1


def choice_field(choices, **kwargs) -> serializers.ChoiceField:
    """A ChoiceField whose error lists the allowed values."""
    return serializers.ChoiceField(
        choices=choices, error_messages={"invalid_choice": invalid_choice_message(choices, "{input}")}, **kwargs
    )


class UnitIntervalField(serializers.FloatField):
    """A metric in [0, 1]. DRF's FloatField takes "nan", "inf" and 1e400 (which is inf); this does not."""

    default_error_messages = {
        "not_finite": "Must be a finite number, not NaN or infinity.",
        "range": "Must be between 0 and 1.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        if not 0.0 <= value <= 1.0:
            self.fail("range")
        return value


def _json_from_text(data):
    return parse_json_text(data) if isinstance(data, str) else data


@extend_schema_field(
    {"type": "array", "items": {"type": "integer", "nullable": True}, "minItems": 1, "maxItems": MAX_SHAPE_RANK}
)
class ShapeField(serializers.Field):
    """A tensor shape: a list of positive ints, with -1 or null for a dynamic dimension. Given as a JSON
    list, or as its text in a form ("[1,3,224,224]")."""

    default_error_messages = {
        "invalid": "Must be a list of 1 to 16 dimensions, each a positive integer, -1 or null (dynamic), "
        "such as [1,3,224,224].",
    }

    def to_internal_value(self, data):
        data = _json_from_text(data)
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_SHAPE_RANK:
            self.fail("invalid")
        for dim in data:
            if dim is None or (type(dim) is int and (dim == -1 or 1 <= dim <= MAX_DIMENSION)):
                continue
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.Field):
    """A JSON object (training config, deployment config): given as an object, or as its text in a
    form. Bounded in size and depth so one request cannot make the registry store or parse a monster."""

    default_error_messages = {
        "not_object": 'Must be a JSON object, such as {{"epochs": 90}}.',
        "too_large": f"Must be at most {MAX_JSON_OBJECT_BYTES} bytes as JSON.",
        "too_deep": f"Must be nested at most {MAX_JSON_DEPTH} levels deep.",
        "not_finite": "Numbers must be finite (1e400 is out of range; NaN and Infinity are not JSON).",
    }

    def to_internal_value(self, data):
        data = _json_from_text(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        if deeper_than(data, MAX_JSON_DEPTH):
            self.fail("too_deep")
        if has_non_finite_number(data):
            self.fail("not_finite")
        if len(json.dumps(data)) > MAX_JSON_OBJECT_BYTES:
            self.fail("too_large")
        return data

    def to_representation(self, value):
        return value


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, so a typo ("acuracy") is an error and not a silent
    no-op; name the fields that can never change after creation; and refuse text that the database
    cannot store, naming its field, rather than failing in the driver with a 500."""

    immutable_fields: dict[str, str] = {}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        unstorable = [key for key, value in attrs.items() if has_unstorable_text(value)]
        if unstorable:
            raise serializers.ValidationError(
                {
                    key: ["Contains a NUL character or a lone UTF-16 surrogate, which cannot be stored."]
                    for key in unstorable
                }
            )
        initial = getattr(self, "initial_data", None)
        if hasattr(initial, "keys"):
            errors = {}
            for key in initial.keys():
                if key in self.immutable_fields:
                    errors[key] = [self.immutable_fields[key]]
                elif key not in self.fields:
                    errors[key] = ["Unknown field."]
                elif self.fields[key].read_only:
                    errors[key] = ["This field is read-only."]
            if errors:
                raise serializers.ValidationError(errors)
        return attrs
