"""An experiment's results over time, for its admin page (issue #11 §4): each variant's metric per bucket
of time, summed in the database from the reported result batches (a rate is conversions / exposures of
the bucket, a mean sum / count), with the experiment's life (start, ramps, pause, stop) marked. The
bucket is the smallest of a minute, an hour, a day or a week that keeps a line under LINE_POINTS points;
the drawing is registry_site.charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db.models import Max, Min, Sum
from django.db.models.functions import Trunc
from django.utils.safestring import SafeString

from deployments_app.models import Experiment, MetricKind, ResultBatch
from registry_site import charts
from registry_site.models import AuditEvent

LINE_POINTS = 200
MARKERS_SHOWN = 20
BUCKETS = (
    ("minute", timedelta(minutes=1)),
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
)
# The experiment's audited moves and how the chart names and colours them.
MOVES = {
    "start_experiment": ("started", "start"),
    "set_experiment_weights": ("weights changed", "change"),
    "pause_experiment": ("paused", "stop"),
    "resume_experiment": ("resumed", "start"),
    "stop_experiment": ("stopped", "stop"),
    "conclude_experiment": ("concluded", "stop"),
}


def bucket_for(span: timedelta) -> tuple[str, timedelta]:
    return next(((kind, length) for kind, length in BUCKETS if span / length <= LINE_POINTS), BUCKETS[-1])


def _markers(experiment: Experiment) -> list[charts.Marker]:
    events = AuditEvent.objects.filter(
        model_name=experiment.model.name,
        object_type="experiment",
        action__in=list(MOVES),
        changes__experiment=experiment.pk,
    ).order_by("-at", "-id")[:MARKERS_SHOWN]
    return [charts.Marker(e.at, MOVES[e.action][0], MOVES[e.action][1]) for e in reversed(events)]


def variant_lines(experiment: Experiment) -> tuple[list[charts.Series], str]:
    """A line per variant (in the order they were made) of the metric per bucket, and the bucket's name."""
    results = ResultBatch.objects.filter(variant__experiment=experiment)
    span = results.aggregate(first=Min("observed_at"), last=Max("observed_at"))
    if span["first"] is None:
        return [], ""
    kind, length = bucket_for(span["last"] - span["first"])
    since = max(span["first"], span["last"] - LINE_POINTS * length)
    rows = (
        results.filter(observed_at__gte=since)
        .annotate(start=Trunc("observed_at", kind, tzinfo=UTC))
        .values("variant_id", "start")
        .annotate(units=Sum("exposures"), conversions=Sum("conversions"), total=Sum("total"))
        .order_by("variant_id", "start")
    )
    rate = experiment.metric_kind == MetricKind.RATE
    points: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    notes: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if not row["units"]:
            continue
        numerator = (row["conversions"] or 0) if rate else (row["total"] or 0.0)
        points[row["variant_id"]].append((row["start"], numerator / row["units"]))
        notes[row["variant_id"]].append(f"{row['units']} {'exposures' if rate else 'observations'}")
    variants = sorted(experiment.variants.all(), key=lambda v: v.pk)
    lines = [
        charts.Series(f"{v.name}{' (control)' if v.is_control else ''}", points[v.pk], notes[v.pk]) for v in variants
    ]
    return lines, kind


def results_chart(experiment: Experiment) -> SafeString:
    lines, kind = variant_lines(experiment)
    what = "conversion rate" if experiment.metric_kind == MetricKind.RATE else "mean"
    title = f"{experiment.metric} per variant"
    if not lines:
        return charts.no_data(title, "no results reported yet.")
    return charts.time_series_chart(
        title=title,
        series=lines,
        markers=_markers(experiment),
        y_label=f"{experiment.metric} ({what} per {kind})",
        description=f"The {what} of {experiment.metric} per {kind} (UTC) of reported results, a line per variant.",
    )
