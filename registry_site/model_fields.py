"""Model fields the apps share."""

from __future__ import annotations

from django.db import models


class RuledJSONField(models.JSONField):
    """A JSONField whose validators judge every value but null. Django skips a field's validators for
    "empty" values, which for JSON include [] and {}: but an empty list is no tensor shape, and a list is
    no configuration object. The column is a plain JSONField's, so migrations record it as one."""

    empty_values = [None]

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class JSONArrayAgg(models.Aggregate):
    """The aggregated values as one JSON array (NULL over no rows): json_group_array on SQLite, jsonb_agg
    on PostgreSQL (jsonb, which Django's driver setup hands to JSONField as text to decode). Lets a row
    carry a short list of related values in the query that reads it, instead of a second query."""

    function = "JSON_GROUP_ARRAY"
    output_field = models.JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSONB_AGG", **extra_context)
