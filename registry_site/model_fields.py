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
