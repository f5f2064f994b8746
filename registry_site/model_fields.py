"""Model fields the apps share."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from registry_site.errors import invalid_choice_message


class RuledJSONField(models.JSONField):
    """A JSONField whose validators judge every value but null. Django skips a field's validators for
    "empty" values, which for JSON include [] and {}: but an empty list is no tensor shape, and a list is
    no configuration object. The column is a plain JSONField's, so migrations record it as one."""

    empty_values = [None]

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class OpenChoiceField(models.CharField):
    """A CharField whose choices come from a callable read at every use (the seed's values, plus those an
    operator adds by setting), so a new value needs a restart and never a migration: the database checks
    only the value's shape, and the model's validation (API, admin, services alike) checks the list as it
    is now. Migrations record a plain CharField, without the list."""

    def validate(self, value, model_instance):
        try:
            super().validate(value, model_instance)
        except ValidationError as exc:
            if exc.code != "invalid_choice":
                raise
            raise ValidationError(
                invalid_choice_message(self.choices, "%(value)s"), code="invalid_choice", params={"value": value}
            ) from None

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        kwargs.pop("choices", None)
        return name, "django.db.models.CharField", args, kwargs


class JSONArrayAgg(models.Aggregate):
    """The aggregated values as one JSON array (NULL over no rows): json_group_array on SQLite, jsonb_agg
    on PostgreSQL (jsonb, which Django's driver setup hands to JSONField as text to decode). Lets a row
    carry a short list of related values in the query that reads it, instead of a second query."""

    function = "JSON_GROUP_ARRAY"
    output_field = models.JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSONB_AGG", **extra_context)


class JSONObjectAgg(models.Aggregate):
    """The aggregated (key, value) pairs as one JSON object (NULL over no rows): json_group_object on
    SQLite, jsonb_object_agg on PostgreSQL. Like JSONArrayAgg, for a short map of related rows read in the
    query of the row they belong to. SQLite writes a float into JSON with 15 significant digits, which
    loses the last bits of some doubles, so there a float value goes as its 17-digit text ("%!.17g": its
    printf stops at 16 digits without the "!"), exact once read back with float()."""

    function = "JSON_GROUP_OBJECT"
    output_field = models.JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        expressions = self.get_source_expressions()
        key, value = expressions[:2]
        if isinstance(value.output_field, models.FloatField):
            exact = models.Func(models.Value("%!.17g"), value, function="PRINTF", output_field=models.TextField())
            exact_copy = self.copy()
            exact_copy.set_source_expressions([key, exact, *expressions[2:]])
            return super(JSONObjectAgg, exact_copy).as_sql(compiler, connection, **extra_context)
        return super().as_sql(compiler, connection, **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSONB_OBJECT_AGG", **extra_context)
