"""Query parameters of the model and version lists: the seed's filters, and (issue #9) the versions'
filters by metric and tag (`?metric.auc__gte=0.9`, `?tag.team=vision`) and their order (`?ordering=`)."""

from __future__ import annotations

import re

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from drf_spectacular.utils import extend_schema_field

from models_app.metric_history import AGGREGATES, BUCKETS
from models_app.models import (
    SOURCE_PATTERN,
    SOURCE_RULE,
    MetricPoint,
    ModelVersion,
    RegisteredModel,
    VersionMetric,
    VersionStatus,
    VersionTag,
    format_choices,
    model_type_choices,
)
from registry_site.filters import IsoDateTimeFilter, StrictBooleanFilter, choice_filter
from registry_site.pagination import KeysetOrder, KeysetSegment
from registry_site.validators import METRIC_NAME_PATTERN, METRIC_NAME_RULE, SEED_METRIC_NAMES, is_metric_name

# --- ?ordering= -----------------------------------------------------------------------------------------
# A column of the version, or a metric (the seed's five are columns too); '-' for descending. Ties are
# broken by the version's id, in the same direction; versions lacking the metric come last either way.
ORDERING_COLUMNS = ("id", "created_at", "version", *SEED_METRIC_NAMES)
_NAME = METRIC_NAME_PATTERN.removeprefix("^").removesuffix("$(?!\\n)")
ORDERING_PATTERN = rf"^-?(?:{'|'.join(ORDERING_COLUMNS)}|metric\.{_NAME})$(?!\n)"
ORDERING_HELP = (
    "The order of the list: one of " + ", ".join(ORDERING_COLUMNS) + " or metric.<name>, with '-' in front for "
    "descending (e.g. -metric.auc). Ties are broken by the version's id, in the same direction; versions "
    "without the metric come after all that have it, in either direction. Without it: newest first."
)


@extend_schema_field({"type": "string", "pattern": ORDERING_PATTERN, "description": ORDERING_HELP})
class OrderingFilter(django_filters.CharFilter):
    """Checked here with the other parameters; applied by the pagination (keyset_order below), since a
    cursor page needs the order's every column."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validators", [RegexValidator(ORDERING_PATTERN, "Not an order. " + ORDERING_HELP)])
        kwargs.setdefault("help_text", ORDERING_HELP)
        super().__init__(method=lambda queryset, name, value: queryset, **kwargs)


def keyset_order(ordering: str, queryset: QuerySet[ModelVersion], model: RegisteredModel) -> KeysetOrder:
    """The cursor pagination's segments for `ordering` (already checked against ORDERING_PATTERN).

    `-metric.auc` reads the index (model, name, value, version) of version_metrics backwards from the
    model's highest auc, a page at a time; the versions without an auc follow, newest first (by the
    (model, -id) index, skipping those that have one)."""
    descending = ordering.startswith("-")
    key = ordering.lstrip("-")
    name = key.removeprefix("metric.")
    if name in SEED_METRIC_NAMES:
        segments = [
            KeysetSegment(queryset.filter(**{f"{name}__isnull": False}), (name, "id"), descending),
            KeysetSegment(queryset.filter(**{f"{name}__isnull": True}), ("id",), descending),
        ]
    elif key.startswith("metric."):
        # The condition on the metric row's own model lets its index lead with it.
        having = queryset.filter(metric_values__model=model, metric_values__name=name).annotate(
            sort_value=F("metric_values__value")
        )
        has_it = VersionMetric.objects.filter(version=OuterRef("pk"), name=name)
        segments = [
            KeysetSegment(having, ("sort_value", "id"), descending),
            KeysetSegment(queryset.filter(~Exists(has_it)), ("id",), descending),
        ]
    else:
        segments = [KeysetSegment(queryset, (key, "id") if key != "id" else ("id",), descending)]
    return KeysetOrder(ordering, segments)


# --- ?metric.<name>[__op]=<number>, ?tag.<key>=<value> --------------------------------------------------
METRIC_LOOKUPS = ("exact", "gt", "gte", "lt", "lte")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class DynamicParametersMixin:
    """Parameters named by the client: a metric (`metric.auc__gte=0.9`; the lookups exact, gt, gte, lt,
    lte; exact when none is given) or a tag (`tag.team=vision`). StrictFilterBackend lets them through as
    this filterset's own, and refuses them empty or repeated; their names and values are judged here, a
    400 naming the parameter."""

    dynamic_parameters = ("metric.<name>[__exact|__gt|__gte|__lt|__lte]", "tag.<key>")

    @staticmethod
    def is_dynamic_parameter(name: str) -> bool:
        return name.startswith(("metric.", "tag."))

    def is_valid(self) -> bool:
        valid = super().is_valid()  # type: ignore[misc]
        self.dynamic_conditions: list[Q] = []
        for param in sorted(name for name in self.data if self.is_dynamic_parameter(name)):  # type: ignore[attr-defined]
            try:
                self.dynamic_conditions.append(_condition(param, self.data[param]))  # type: ignore[attr-defined]
            except ValueError as exc:
                self.form.errors[param] = self.form.error_class([str(exc)])  # type: ignore[attr-defined]
                valid = False
        return valid

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)  # type: ignore[misc]
        for condition in self.dynamic_conditions:
            queryset = queryset.filter(condition)
        return queryset


def _condition(param: str, value: str) -> Q:
    family, _, rest = param.partition(".")
    if family == "tag":
        if not is_metric_name(rest):
            raise ValueError(f"Not a tag key: use {METRIC_NAME_RULE}.")
        return Q(Exists(VersionTag.objects.filter(version=OuterRef("pk"), key=rest, value=value)))
    name, lookup = rest, "exact"
    if "__" in rest:
        name, lookup = rest.rsplit("__", 1)
    if not is_metric_name(name):
        raise ValueError(f"Not a metric name: use {METRIC_NAME_RULE}.")
    if lookup not in METRIC_LOOKUPS:
        raise ValueError(f"Unknown lookup '{lookup}'; use one of: {', '.join(METRIC_LOOKUPS)}.")
    number = float(value) if NUMBER.fullmatch(value) else None
    if number is None or number in (float("inf"), float("-inf")):
        raise ValueError("Must be a finite number, such as 0.9 or -1.5e-3.")
    if name in SEED_METRIC_NAMES:
        return Q(**{f"{name}__{lookup}": number})
    return Q(Exists(VersionMetric.objects.filter(version=OuterRef("pk"), name=name, **{f"value__{lookup}": number})))


class RegisteredModelFilter(django_filters.FilterSet):
    model_type = choice_filter(model_type_choices)
    is_active = StrictBooleanFilter()

    class Meta:
        model = RegisteredModel
        fields = ["model_type", "is_active"]


class ModelVersionFilter(DynamicParametersMixin, django_filters.FilterSet):
    status = choice_filter(VersionStatus.choices)
    is_default = StrictBooleanFilter()
    format = choice_filter(format_choices)
    ordering = OrderingFilter()

    class Meta:
        model = ModelVersion
        fields = ["status", "is_default", "format", "ordering"]


# --- A version's metric history (issue #9, section 2) ------------------------------------------------
@extend_schema_field({"type": "string", "pattern": METRIC_NAME_PATTERN})
class MetricNameFilter(django_filters.CharFilter):
    """A metric's name, by its rule; the schema publishes the pattern."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "validators", [RegexValidator(METRIC_NAME_PATTERN, f"Not a metric name: use {METRIC_NAME_RULE}.")]
        )
        super().__init__(**kwargs)


@extend_schema_field({"type": "string", "pattern": SOURCE_PATTERN})
class SourceFilter(django_filters.CharFilter):
    """A point's source, by its rule; the schema publishes the pattern."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validators", [RegexValidator(SOURCE_PATTERN, f"Not a source: use {SOURCE_RULE}.")])
        super().__init__(**kwargs)


class MetricPointFilter(django_filters.FilterSet):
    """GET /models/{m}/versions/{v}/metrics: points by name, source and time (since inclusive, until
    exclusive, as the audit list's)."""

    name = MetricNameFilter(help_text="Only this metric's points.")
    source = SourceFilter(help_text="Only points from this source (eval, canary, production, registration...).")
    since = IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte", help_text="Points at or after this time.")
    until = IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt", help_text="Points before this time.")

    class Meta:
        model = MetricPoint
        fields = ("name", "source", "since", "until")


def _no_op(queryset: QuerySet, name: str, value: str) -> QuerySet:
    return queryset


class MetricSummaryFilter(MetricPointFilter):
    """GET .../metrics/summary: the list's filters, and how to bucket and aggregate (by default 1d and
    avg, applied by the view)."""

    bucket = choice_filter(
        [(key, key) for key in BUCKETS], method=_no_op, help_text="The buckets' width, in UTC (default 1d)."
    )
    agg = choice_filter(
        [(key, key) for key in AGGREGATES],
        method=_no_op,
        help_text="Each bucket's value: avg (the default), min, max, last (the latest point's) or count.",
    )

    class Meta(MetricPointFilter.Meta):
        fields = ("name", "source", "since", "until", "bucket", "agg")
