"""Form fields the admin's forms share."""

from __future__ import annotations

from typing import Any

from django import forms

from registry_site.json_values import parse_json_text


class StrictJSONField(forms.JSONField):
    """Django's JSONField, parsing as the API does: NaN and Infinity (which PostgreSQL's jsonb refuses)
    and JSON nested deeply enough to exhaust the stack are form errors, not 500s."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value not in self.empty_values and not self.disabled:
            parse_json_text(value)  # raises the form error
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)
