"""Serializer fields, a serializer mixin and a filter that both apps' APIs use. Forms send every value as
text (the seed's multipart form), JSON bodies send typed values: each field accepts both, strictly."""

from __future__ import annotations

import json
import math
import re

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry_site.api import parse_json_text

MAX_JSON_OBJECT_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_SHAPE_RANK = 16
MAX_DIMENSION = 2**31 - 1


def choice_field(choices, **kwargs) -> serializers.ChoiceField:
    """A ChoiceField whose error lists the allowed values."""
    allowed = ", ".join(value for value, _ in choices)
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"invalid_choice": f'"{{input}}" is not a valid choice; use one of: {allowed}.'},
        **kwargs,
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


def _depth(value, limit: int, level: int = 1) -> int:
    if level > limit:
        return level
    if isinstance(value, dict):
        return max((_depth(v, limit, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, limit, level + 1) for v in value), default=level)
    return level


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
        if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            self.fail("too_deep")
        if has_non_finite_number(data):
            self.fail("not_finite")
        if len(json.dumps(data)) > MAX_JSON_OBJECT_BYTES:
            self.fail("too_large")
        return data

    def to_representation(self, value):
        return value


# JSON escapes can spell text that no database stores: NUL (PostgreSQL refuses it in text and jsonb)
# and lone UTF-16 surrogates (not encodable as UTF-8).
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def has_non_finite_number(value) -> bool:
    """JSON's grammar has no NaN or infinity, but a number such as 1e400 parses to one."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite_number(v) for v in value.values())
    if isinstance(value, list):
        return any(has_non_finite_number(v) for v in value)
    return False


def has_unstorable_text(value) -> bool:
    if isinstance(value, str):
        return UNSTORABLE_TEXT.search(value) is not None
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(v) for v in value)
    return False


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


def choice_filter(choices, **kwargs) -> django_filters.ChoiceFilter:
    """A ChoiceFilter whose error lists the allowed values, like the serializers' choice fields."""
    allowed = ", ".join(value for value, _ in choices)
    return django_filters.ChoiceFilter(
        choices=choices,
        error_messages={"invalid_choice": f'"%(value)s" is not a valid choice; use one of: {allowed}.'},
        **kwargs,
    )


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """A boolean query parameter that refuses anything but true/false/1/0 (django-filter's BooleanFilter
    silently ignores a value it cannot read, returning the unfiltered list)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [(v, v) for v in ("true", "false", "True", "False", "1", "0")])
        kwargs.setdefault("coerce", lambda value: value in ("true", "True", "1"))
        super().__init__(*args, **kwargs)
