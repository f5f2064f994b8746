"""The serializer base and fields both apps' APIs use. Forms send every value as text (the seed's multipart
form), JSON bodies send typed values: each field accepts both, strictly. What a value must be is the
model field's rule (registry_site.validators), which RegistryModelSerializer copies onto its fields."""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import setting_changed
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.choices import CallableChoiceIterator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings
from rest_framework.utils import html
from rest_framework.validators import UniqueValidator

from registry_site.errors import invalid_choice_message
from registry_site.json_values import has_unstorable_text, parse_json_text
from registry_site.row_views import RowView
from registry_site.validators import (
    MAX_DIMENSION,
    MAX_METRICS_PER_VERSION,
    MAX_SHAPE_RANK,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS_PER_VERSION,
    METRIC_NAME_RULE,
    UNSTORABLE_MESSAGE,
    clean_metrics,
    clean_tags,
    validate_json_object,
    validate_metric_directions,
    validate_sha256_hex,
    validate_shape,
    validate_unit_interval,
)

# C0 and C1 control characters and DEL; free text (a description, release notes) keeps its tabs and line
# breaks. NUL is refused here too, before it could reach the database.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_CHARACTERS_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
JSON_KINDS = {bool: "true or false", int: "a number", float: "a number", list: "a list", dict: "an object"}
EMPTY_FORM_VALUE = "Empty: give a value, or leave the field out."


class StrictCharField(serializers.CharField):
    """Text exactly as given: a number or true is not text (DRF would turn 123 into "123"), surrounding
    whitespace is not trimmed away (so "1.0\n" is refused by the version's rule rather than becoming
    1.0), and no control characters."""

    multiline = False
    default_error_messages = {
        "not_text": "Must be text (a JSON string), not {kind}.",
        "control": "Must not contain control characters (found {char}).",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        # The same rule as a pattern, so the OpenAPI schema says it (drf-spectacular turns the first
        # RegexValidator into `pattern`: a field's own pattern, which excludes these too, comes first).
        # to_internal_value refuses first, with the clearer message.
        refused = r"\x00-\x08\x0b\x0c\x0e-\x1f" if self.multiline else r"\x00-\x1f"
        self.validators = [*self.validators, RegexValidator(rf"^[^{refused}\x7f-\x9f]*$(?!\n)")]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_text", kind=JSON_KINDS.get(type(data), type(data).__name__))
        found = (CONTROL_CHARACTERS_IN_TEXT if self.multiline else CONTROL_CHARACTERS).search(data)
        if found:
            self.fail("control", char=f"U+{ord(found.group()):04X}")
        return super().to_internal_value(data)


class StrictTextField(StrictCharField):
    """Free text of several lines: tabs and line breaks are allowed, other control characters are not."""

    multiline = True


class StrictFloatField(serializers.FloatField):
    """DRF's FloatField, except that true and false are not numbers."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A whole JSON number: not text ("5"), not true or false, not 5.0. For JSON-only bodies (the
    targets'); a form's text would need DRF's own IntegerField."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "number", "format": "double", "minimum": 0, "maximum": 1})
class MetricField(StrictFloatField):
    """A metric in [0, 1] (registry_site.validators.validate_unit_interval)."""


class StrictBooleanField(serializers.BooleanField):
    """DRF's BooleanField, except that a JSON number (0, 1) is not a boolean; form text keeps DRF's words
    ("true", "false", "1", "0"...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool | str):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)


class JSONValueField(serializers.JSONField):
    """A JSON value, given as itself (a JSON body) or as its text (a form field: the seed sends shapes
    as "[1,3,224,224]")."""

    def to_internal_value(self, data: Any) -> Any:
        return parse_json_text(data) if isinstance(data, str) else data


@extend_schema_field(
    {
        "type": "array",
        # A positive dimension, or -1 or null for a dynamic one.
        "items": {
            "type": "integer",
            "nullable": True,
            "anyOf": [{"minimum": 1, "maximum": MAX_DIMENSION}, {"enum": [-1]}],
        },
        "minItems": 1,
        "maxItems": MAX_SHAPE_RANK,
    }
)
class ShapeField(JSONValueField):
    """A tensor shape (registry_site.validators.validate_shape)."""

    default_validators = [validate_shape]


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(JSONValueField):
    """A JSON object such as a training or deployment config (validate_json_object)."""

    default_validators = [validate_json_object]


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "enum": ["higher", "lower"]},
        "description": f"Metric names ({METRIC_NAME_RULE}) to which of their values are better.",
    }
)
class MetricDirectionsField(JSONValueField):
    """A model's metric directions (validate_metric_directions): {"ece": "lower"}."""

    default_validators = [validate_metric_directions]


def _metadata_map_schema(values: dict, *, what: str, limit: int, change: bool) -> dict:
    # OpenAPI 3.0 cannot state a rule on an object's keys (no propertyNames): the description does.
    note = " In a change, null removes a name and names not given stay." if change else ""
    return {
        "type": "object",
        "additionalProperties": {**values, **({"nullable": True} if change else {})},
        "maxProperties": limit,
        "description": f"{what} Names: {METRIC_NAME_RULE}.{note}",
    }


_FINITE = {"type": "number", "format": "double", "minimum": -1.7976931348623157e308, "maximum": 1.7976931348623157e308}
_TAG_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TAG_VALUE_LENGTH,
    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$(?!\\n)",
}


class _MetadataMapField(JSONValueField):
    """A map of names to values (a version's metrics or tags), as a JSON object or, in a form, its text.
    In a change (PATCH), null removes a name."""

    clean: Callable[..., dict[str, Any]] = staticmethod(clean_metrics)
    change = False

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        try:
            return type(self).clean(value, allow_null=self.change)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


_METRICS = "Named metrics besides the seed's five: finite numbers of any range."
_TAGS = f"String tags (key and value), values of 1 to {MAX_TAG_VALUE_LENGTH} characters."


@extend_schema_field(_metadata_map_schema(_FINITE, what=_METRICS, limit=MAX_METRICS_PER_VERSION, change=False))
class MetricsField(_MetadataMapField):
    """A version's named metrics: {"auc": 0.91, "val.loss": 0.23} (registry_site.validators.clean_metrics)."""

    clean = staticmethod(clean_metrics)


@extend_schema_field(_metadata_map_schema(_FINITE, what=_METRICS, limit=MAX_METRICS_PER_VERSION, change=True))
class MetricsChangeField(MetricsField):
    change = True


@extend_schema_field(_metadata_map_schema(_TAG_TEXT, what=_TAGS, limit=MAX_TAGS_PER_VERSION, change=False))
class TagsField(_MetadataMapField):
    """A version's string tags: {"team": "vision"} (registry_site.validators.clean_tags)."""

    clean = staticmethod(clean_tags)


@extend_schema_field(_metadata_map_schema(_TAG_TEXT, what=_TAGS, limit=MAX_TAGS_PER_VERSION, change=True))
class TagsChangeField(TagsField):
    change = True


def declared_sha256_field() -> serializers.CharField:
    return StrictCharField(
        required=False,
        validators=[validate_sha256_hex],
        help_text="The sha256 the client expects the file to have; on a mismatch nothing is stored.",
    )


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, so a typo ("acuracy") is an error and not a silent
    no-op; name the fields that can never change after creation; and refuse text that the database
    cannot store, naming its field, rather than failing in the driver with a 500."""

    immutable_fields: dict[str, str] = {}

    def to_internal_value(self, data):
        """A form field sent empty is refused (400, naming it) unless the field is text that may be
        blank: DRF would read it as null for a nullable field, and as not given for others, while the
        same "" in JSON is refused. Leave a field out to not give it."""
        empty = {}
        if html.is_html_input(data):
            for name, field in self.fields.items():
                if field.read_only or name not in data or getattr(field, "allow_blank", False):
                    continue
                if data.get(name) == "":
                    empty[name] = [EMPTY_FORM_VALUE]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if empty and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **empty}) from None
            raise
        if empty:
            raise serializers.ValidationError(empty)
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        unstorable = [key for key, value in attrs.items() if has_unstorable_text(value)]
        if unstorable:
            raise serializers.ValidationError({key: [UNSTORABLE_MESSAGE] for key in unstorable})
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


class RegistryModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A ModelSerializer whose fields take their rules from the model fields (validators, lengths,
    choices), read form text strictly, and name the allowed values of a choice. Uniqueness is left to
    the services, which decide it under a row lock and answer 409, not to a query made in advance."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.FloatField: StrictFloatField,
        models.BooleanField: StrictBooleanField,
        models.CharField: StrictCharField,
        models.TextField: StrictTextField,
        models.JSONField: JSONValueField,
    }
    # A JSON field's class (and so its OpenAPI schema) follows from the rule its model field carries.
    json_field_classes = {
        validate_shape: ShapeField,
        validate_json_object: JSONObjectField,
        validate_metric_directions: MetricDirectionsField,
    }

    def build_standard_field(self, field_name: str, model_field: models.Field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        validators = [v for v in kwargs.pop("validators", []) if not isinstance(v, UniqueValidator)]
        if validators:
            kwargs["validators"] = validators
        if issubclass(field_class, serializers.ChoiceField):
            kwargs["error_messages"] = _choice_error_messages(model_field)
        if field_class is StrictFloatField and validate_unit_interval in validators:
            field_class = MetricField
        if field_class is JSONValueField:
            field_class = next(
                (cls for rule, cls in self.json_field_classes.items() if rule in validators), field_class
            )
        return field_class, kwargs

    def get_validators(self) -> list:
        """Only the validators a serializer's Meta names. ModelSerializer would otherwise derive
        unique-together and unique-for-date validators from the model on every validation (reading the
        model's fields and relations again: a fifth of validating a version's form), and such validators
        would check uniqueness by a query made in advance, which the services decide under a lock."""
        return list(getattr(getattr(self, "Meta", None), "validators", ()))

    def get_fields(self) -> dict[str, serializers.Field]:
        """The fields, built once per class (reading the model's fields, making about 25 field objects,
        cost about 1 ms of CPU on every request) and copied for each serializer. The copies are shallow,
        as each is then bound to its serializer: fields keep no other state of their own. A choice field
        whose model field's choices are a callable (read at each use, from settings say) gets them anew
        on every copy, so a list that changes is never frozen; a changed setting (tests) rebuilds all."""
        cls = type(self)
        prototypes = _FIELD_PROTOTYPES.get(cls)
        if prototypes is None:
            built = super().get_fields()
            prototypes = _FIELD_PROTOTYPES[cls] = {
                name: (field, _callable_choices_source(self.Meta.model, name, field)) for name, field in built.items()
            }
        fields = {}
        for name, (prototype, choices_source) in prototypes.items():
            field = copy.copy(prototype)
            if choices_source is not None and isinstance(field, serializers.ChoiceField):
                field.choices = choices_source.choices
                field.error_messages = {**field.error_messages, **_choice_error_messages(choices_source)}
            fields[name] = field
        return fields

    def _output_plan(self, instance_type: type) -> list[tuple]:
        """Per readable field: its name, its place in the row when the instance is a row view whose row
        holds the value (registry_site.row_views), the attributes it reads otherwise, the types it returns
        as they are, and how it represents the others. Worked out once per serializer class, instance type
        and time zone from the class's field prototypes (making and binding a serializer's 33 fields cost a
        quarter of a version's read), then bound to this serializer: a method field calls its method."""
        zone = timezone.get_current_timezone() if settings.USE_TZ else None  # DRF's DateTimeField default
        key = (type(self), instance_type, zone)
        shared = _OUTPUT_PLANS.get(key)
        if shared is None:
            shared = _OUTPUT_PLANS[key] = self._shared_output_plan(instance_type, zone)
        return [
            (name, index, path, unchanged, represent if method is None else getattr(self, method))
            for name, index, path, unchanged, represent, method in shared
        ]

    def _shared_output_plan(self, instance_type: type, zone: Any) -> list[tuple]:
        fields: Iterable[tuple[str, serializers.Field]]
        if type(self).get_fields is not RegistryModelSerializer.get_fields:
            fields = self.fields.items()  # fields of its own making: read as they are bound here
        else:
            self.get_fields()  # the prototypes, made once
            fields = ((name, field) for name, (field, _) in _FIELD_PROTOTYPES[type(self)].items())
        columns = instance_type._columns if issubclass(instance_type, RowView) else {}
        plan = []
        for name, field in fields:
            if field.write_only:
                continue
            path = _plain_path(field, name)
            method = None
            if type(field).to_representation is serializers.SerializerMethodField.to_representation:
                method = getattr(field, "method_name", None) or f"get_{name}"
            index = columns.get(path) if path else None
            plan.append((name, index, path, _unchanged_types(field), _representer(field, zone), method))
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """DRF's own loop (Serializer.to_representation), with what it asks of every field on every row
        worked out once per serializer: which fields are readable, and the attributes each one reads. A
        page of 50 versions reads 1,600 values, and DRF's generic read of each (a generator, an ABC
        isinstance, a callable check) cost more than most values' own representation. A field that
        reads in its own way, or a value DRF treats specially (a callable, a missing attribute, a
        related field's pk-only object), is read DRF's way; tests/test_serializer_output.py compares. A row
        view's columns are read from its row directly."""
        plans = self.__dict__.get("_output_plans")
        if plans is None:
            plans = self.__dict__["_output_plans"] = {}
        plan = plans.get(type(instance))
        if plan is None:
            plan = plans[type(instance)] = self._output_plan(type(instance))
        row = instance._row if isinstance(instance, RowView) else None
        ret: dict[str, Any] = {}
        for name, index, path, unchanged, represent in plan:
            if index is not None:
                value = row[index]  # type: ignore[index]
            elif path == ():  # source="*": the instance itself (a method field)
                value = instance
            else:
                value = _read(instance, path)
            if value is _DRF_READS:
                try:
                    value = self.fields[name].get_attribute(instance)
                except serializers.SkipField:
                    continue
                if isinstance(value, PKOnlyObject) and value.pk is None:
                    value = None
            if value is None or unchanged is _ANY or type(value) in unchanged:
                ret[name] = value
            else:
                ret[name] = represent(value)
        return ret


_DRF_READS = object()
_ANY = (object,)
# DRF fields whose to_representation returns a value of these exact types as it is (str(s) is s...): the
# plan skips the call for them, a third of a page's values.
_RETURNED_AS_IS: dict[Any, tuple[type, ...]] = {
    serializers.CharField.to_representation: (str,),
    serializers.IntegerField.to_representation: (int,),
    serializers.FloatField.to_representation: (float,),
    serializers.BooleanField.to_representation: (bool,),
}


def _representer(field: serializers.Field, default_zone: Any) -> Callable[[Any], Any]:
    """field.to_representation, or for a DateTimeField written in ISO 8601 the same done without asking
    for the time zone on every value (a page of versions has 100 of them): the plan is made for the
    request's zone, `default_zone`, the one DRF would read for each value."""
    if (
        not isinstance(field, serializers.DateTimeField)
        or type(field).to_representation is not serializers.DateTimeField.to_representation
    ):
        return field.to_representation
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    zone = field.timezone if hasattr(field, "timezone") else default_zone
    if zone is None or output_format is None or output_format.lower() != ISO_8601:
        return field.to_representation

    def iso_8601(value: Any) -> Any:
        if type(value) is not datetime.datetime or value.utcoffset() is None:
            return field.to_representation(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return field.to_representation(value)  # DRF's own error
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso_8601


def _unchanged_types(field: serializers.Field) -> tuple[type, ...]:
    """The exact types of value that `field` represents as they are (_ANY: every value)."""
    method = type(field).to_representation
    if method is serializers.JSONField.to_representation and not getattr(field, "binary", False):
        return _ANY  # DRF's JSONField returns the value as it is unless it is binary
    return _RETURNED_AS_IS.get(method, ())


def _plain_path(field: serializers.Field, name: str) -> tuple[str, ...] | None:
    """The attributes a field named `name` reads, when DRF's Field.get_attribute would read just them
    (its source_attrs, as Field.bind sets them)."""
    if type(field).get_attribute is not serializers.Field.get_attribute:
        return None
    source = field.source or name
    return () if source == "*" else tuple(source.split("."))


def _read(instance: Any, path: tuple[str, ...] | None) -> Any:
    if path is None or isinstance(instance, dict):
        return _DRF_READS
    value = instance
    try:
        for attr in path:
            value = getattr(value, attr)
    except (AttributeError, ObjectDoesNotExist):
        return _DRF_READS
    return _DRF_READS if callable(value) else value


_FIELD_PROTOTYPES: dict[type, dict[str, tuple[serializers.Field, models.Field | None]]] = {}


def _choice_error_messages(model_field: models.Field) -> dict[str, str]:
    return {"invalid_choice": invalid_choice_message(model_field.choices, "{input}")}


def _callable_choices_source(model: type[models.Model], name: str, field: serializers.Field) -> models.Field | None:
    """The model field a serializer choice field takes its choices from, when they are a callable."""
    if not isinstance(field, serializers.ChoiceField):
        return None
    try:
        model_field = model._meta.get_field(field.source or name)
    except FieldDoesNotExist:
        return None
    if isinstance(model_field, models.Field) and isinstance(model_field.choices, CallableChoiceIterator):
        return model_field
    return None


_OUTPUT_PLANS: dict[tuple, list[tuple]] = {}


def _forget_fields(**kwargs) -> None:
    _FIELD_PROTOTYPES.clear()
    _OUTPUT_PLANS.clear()


setting_changed.connect(_forget_fields)
