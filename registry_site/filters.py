"""Query parameters, strictly: an unknown parameter or a value outside its choices is a 400, never a
silently unfiltered list."""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions

from registry_site.errors import invalid_choice_message


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, refusing query parameters it does not know: a misspelt filter (?stauts=approved)
    would otherwise return the whole unfiltered list as if it had matched."""

    always_allowed = frozenset({"cursor", "page_size"})

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = self.always_allowed | set(getattr(view, "extra_query_params", ()))
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise exceptions.ValidationError({key: [f"Unknown query parameter; known: {known}."] for key in unknown})
        return super().filter_queryset(request, queryset, view)


def choice_filter(choices, **kwargs) -> django_filters.ChoiceFilter:
    """A ChoiceFilter whose error lists the allowed values, like the serializers' choice fields."""
    return django_filters.ChoiceFilter(
        choices=choices, error_messages={"invalid_choice": invalid_choice_message(choices, "%(value)s")}, **kwargs
    )


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """A boolean query parameter that refuses anything but true/false/1/0 (django-filter's BooleanFilter
    silently ignores a value it cannot read, returning the unfiltered list)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [(v, v) for v in ("true", "false", "True", "False", "1", "0")])
        kwargs.setdefault("coerce", lambda value: value in ("true", "True", "1"))
        super().__init__(*args, **kwargs)
