"""Query parameters, strictly: an unknown parameter, an empty or repeated one, or a value outside its
choices is a 400 naming it, never a silently unfiltered list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.utils.choices import CallableChoiceIterator
from django.utils.functional import lazy
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions

from registry_site.errors import invalid_choice_message


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, refusing query parameters it does not know: a misspelt filter (?stauts=approved)
    would otherwise return the whole unfiltered list as if it had matched."""

    always_allowed = frozenset({"cursor", "page_size"})

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        # A view that does not paginate (view.paginator None) takes no cursor or page size.
        paging = self.always_allowed if getattr(view, "paginator", True) is not None else frozenset()
        allowed = paging | set(getattr(view, "extra_query_params", ()))
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        # A filterset may take families of parameters named by the client (?metric.auc__gte=0.9): it
        # says which names are its own (DynamicParametersMixin), and judges their values itself.
        dynamic = getattr(filterset_class, "is_dynamic_parameter", lambda name: False)
        params = request.query_params
        unknown = sorted(name for name in set(params) - allowed if not dynamic(name))
        if unknown:
            known = ", ".join([*sorted(allowed), *getattr(filterset_class, "dynamic_parameters", ())])
            raise exceptions.ValidationError({key: [f"Unknown query parameter; known: {known}."] for key in unknown})
        # django-filter reads an empty value as "not given" and the last of repeated ones: both would
        # answer a list the client did not ask for. (An empty cursor is the first page, as no cursor.)
        strict = set(filterset_class.base_filters if filterset_class is not None else ()) | {"page_size"}
        strict |= {name for name in params if dynamic(name)}
        errors = {}
        for key in sorted(strict & set(params)):
            values = params.getlist(key)
            if len(values) > 1:
                errors[key] = ["Given more than once; give it once."]
            elif values[0] == "":
                errors[key] = ["May not be empty; leave the parameter out to not filter by it."]
        if errors:
            raise exceptions.ValidationError(errors)
        if not set(params) - self.always_allowed - set(getattr(view, "extra_query_params", ())):
            # Nothing to filter by: no FilterSet (a form, and a copy of every filter) is built for it.
            return queryset
        return super().filter_queryset(request, queryset, view)


def choice_filter(choices, **kwargs) -> django_filters.ChoiceFilter:
    """A ChoiceFilter whose error lists the allowed values, like the serializers' choice fields. `choices`
    may be a callable (a list an operator extends by setting), read at each request."""
    if callable(choices):
        read = choices
        message = lazy(lambda: invalid_choice_message(read(), "%(value)s"), str)()
        # Iterable and read anew each time (the form's list, the schema's enum), never kept.
        choices = CallableChoiceIterator(read)
    else:
        message = invalid_choice_message(choices, "%(value)s")
    return django_filters.ChoiceFilter(choices=choices, error_messages={"invalid_choice": message}, **kwargs)


BOOLEAN_WORDS = ("true", "false", "True", "False", "1", "0")


class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """A boolean query parameter that refuses anything but true/false/1/0 (django-filter's BooleanFilter
    silently ignores a value it cannot read, returning the unfiltered list)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [(v, v) for v in BOOLEAN_WORDS])
        kwargs.setdefault("coerce", lambda value: value in ("true", "True", "1"))
        super().__init__(*args, **kwargs)


# No time zone is further from UTC than these (Kiribati's +14:00, Baker Island's -12:00). PostgreSQL
# refuses an offset of 16 hours outright (a 500 if it reaches the query); SQLite would compare the text.
MAX_UTC_OFFSET = timedelta(hours=14)


class UtcIsoDateTimeField(IsoDateTimeField):
    default_error_messages = {
        "offset": "The UTC offset must be between -14:00 and +14:00.",
    }

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError(self.error_messages["offset"], code="offset")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant Python represents
            return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, in UTC before it reaches the database; an offset no zone uses is a 400 naming
    the parameter (registry_site.schema documents the range)."""

    field_class = UtcIsoDateTimeField
