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
