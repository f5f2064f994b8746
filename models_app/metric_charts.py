"""The console's charts of metrics (issue #9 §5): what to draw, read with a bounded cost; the drawing is
registry_site.charts.

- A version's history: each metric a chart, a line per source, its deploys and rollbacks marked. A few
  points (RAW_POINTS) are drawn as they are; more are averaged by metric_history.summarize into hours or
  days, whichever keeps a line under LINE_POINTS points, over at most LINE_POINTS of those buckets back
  from the latest point. The summary reads the hourly rollups (and raw points only for a part-hour at the
  start), so the page costs about the same with a million points as with ten thousand: two index reads
  and a GROUP BY of at most a few thousand rollups, never a read of the points into Python.
- A model's metric across its versions: the latest VERSIONS_CHARTED versions in the order they were
  registered, the metric's registered value of each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.utils.safestring import SafeString

from deployments_app.models import Deployment
from models_app import comparison, metric_history, selectors
from models_app.models import METRIC_FIELDS, ModelVersion, RegisteredModel
from registry_site import charts
from registry_site.errors import InvalidInput

RAW_POINTS = 2_000
LINE_POINTS = 200
METRICS_CHARTED = 12
MARKERS_SHOWN = 20
VERSIONS_CHARTED = 40
BUCKET_LENGTHS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}


@dataclass
class HistoryCharts:
    charts: list[SafeString] = field(default_factory=list)
    note: str = ""  # how the points were read: every point, or averages per hour or day since when


def _markers(version: ModelVersion, since: datetime | None) -> list[charts.Marker]:
    """The version's latest deploys and rollbacks (from its Deployment rows) from `since` on."""
    found = []
    for deployment in Deployment.objects.filter(model_version_id=version.pk).order_by("-deployed_at", "-id")[
        :MARKERS_SHOWN
    ]:
        target = deployment.deployment_target_id
        found.append(charts.Marker(deployment.deployed_at, f"deployed to {target}", "deploy"))
        if deployment.rollback_at is not None:
            found.append(charts.Marker(deployment.rollback_at, f"rolled back from {target}", "rollback"))
    return sorted((m for m in found if since is None or m.at >= since), key=lambda m: m.at)


def _raw(rows: list[tuple[str, str, datetime, float]]) -> dict[str, list[charts.Series]]:
    lines: dict[str, dict[str, list[tuple[datetime, float]]]] = defaultdict(lambda: defaultdict(list))
    for name, source, moment, value in rows:
        lines[name][source].append((moment, value))
    return {
        name: [charts.Series(source, points) for source, points in sorted(by.items())] for name, by in lines.items()
    }


def _summarized(rows: list[metric_history.SummaryRow]) -> dict[str, list[charts.Series]]:
    out: dict[str, list[charts.Series]] = defaultdict(list)
    for line in metric_history.series(rows):
        buckets = line["buckets"]
        out[line["name"]].append(
            charts.Series(
                line["source"],
                [(b["start"], b["value"]) for b in buckets],
                notes=[f"average of {b['count']} points" for b in buckets],
            )
        )
    return out


def history_lines(version: ModelVersion) -> tuple[dict[str, list[charts.Series]], str, datetime | None]:
    """Per metric name the lines to draw (one per source), a note on how they were read, and the time
    from which they start when older points were left out (None: all of them)."""
    points = metric_history.points_of(version)
    head = list(
        points.order_by("timestamp", "id").values_list("name", "source", "timestamp", "value")[: RAW_POINTS + 1]
    )
    if len(head) <= RAW_POINTS:
        return _raw(head), "Every point, as recorded." if head else "", None
    first = head[0][2]
    last = points.order_by("-timestamp", "-id").values_list("timestamp", flat=True)[0]
    bucket = "1h" if last - first <= LINE_POINTS * BUCKET_LENGTHS["1h"] else "1d"
    since = max(first, last - LINE_POINTS * BUCKET_LENGTHS[bucket])
    try:
        rows = metric_history.summarize(version=version, bucket=bucket, agg="avg", since=since)
    except InvalidInput:
        # More metric and source pairs than a summary returns at once: the latest tenth of the span.
        since = last - LINE_POINTS * BUCKET_LENGTHS[bucket] / 10
        rows = metric_history.summarize(version=version, bucket=bucket, agg="avg", since=since)
    unit = "hour" if bucket == "1h" else "day"
    note = f"Averages per {unit} (UTC)" + (f" since {since:%Y-%m-%d %H:%M} UTC." if since > first else ".")
    return _summarized(rows), note, (since if since > first else None)


def version_history_charts(version: ModelVersion) -> HistoryCharts:
    """A chart per metric of the version's history (at most METRICS_CHARTED, by name), its deploys and
    rollbacks marked."""
    lines, note, since = history_lines(version)
    if not lines:
        return HistoryCharts()
    markers = _markers(version, since)
    names = sorted(lines, key=comparison.metric_order)
    moments = [t for series in lines.values() for line in series for t, _ in line.points]
    # A source keeps its colour on every chart of the page.
    sources = sorted({line.label for series in lines.values() for line in series})
    lines = {
        name: [replace(line, colour=sources.index(line.label)) for line in series] for name, series in lines.items()
    }
    span = (min(moments), max(moments))  # the same time axis on every chart of the page
    drawn = [
        charts.time_series_chart(
            title=f"{name} of {version.model.name}:{version.version}",
            series=lines[name],
            markers=markers,
            y_label=name,
            description=f"{name} over time, one line per source. {note}",
            x_range=span,
        )
        for name in names[:METRICS_CHARTED]
    ]
    if len(names) > METRICS_CHARTED:
        note += f" The first {METRICS_CHARTED} metrics of {len(names)} are charted; the API has them all."
    return HistoryCharts(drawn, note)


def chartable_metrics(model: RegisteredModel) -> tuple[list[ModelVersion], list[str]]:
    """The latest VERSIONS_CHARTED versions in registration order, and the metric names any of them has
    (the seed's five first)."""
    versions = list(selectors.versions_of(model.name).order_by("-id")[:VERSIONS_CHARTED])[::-1]
    names = {name for version in versions for name in comparison.metrics_of(version)}
    return versions, sorted(names, key=comparison.metric_order)


def default_metric(names: list[str]) -> str | None:
    """The first of the seed's five that has values, else the first named one."""
    return next((name for name in METRIC_FIELDS if name in names), names[0] if names else None)


def across_versions_chart(model: RegisteredModel, versions: list[ModelVersion], metric: str) -> SafeString:
    values = [comparison.metrics_of(version).get(metric) for version in versions]
    return charts.bar_chart(
        title=f"{metric} across the versions of {model.name}",
        labels=[version.version for version in versions],
        values=values,
        y_label=metric,
        description=f"The registered {metric} of the latest {len(versions)} versions, oldest first.",
    )
