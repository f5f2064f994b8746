"""A version's metric history (issue #9, section 2): time-stamped observations (MetricPoint), recorded
one at a time or in batches, listed, summarized in time buckets for charts, and pruned.

- Recording validates every point before anything is written, then writes the batch with one
  bulk_create in one transaction: all or nothing. Each problem names its field, with the point's index
  in a batch (`points[3].value`).
- Points are append-only and never updated, so recording takes no row lock of its own: the foreign key
  already holds the version's key against a concurrent delete (PostgreSQL takes a KEY SHARE lock for it),
  and a lock of the version or model row would serialize every ingest of that model for nothing.
- A batch is audited as ONE event (how many points, which names and sources), never per point: a client
  may send tens of thousands of points a second, and an audit row per point would double the writes
  and drown the trail's other events; the points themselves are the record of what was sent.
- Registering a version with metrics and changing one later record points with the source
  `registration` (record_registered, called by models_app.services, which every door goes through).
- Summaries bucket and aggregate in the database (Trunc, GROUP BY, a window function for `last`), on
  SQLite and PostgreSQL alike, never by reading the points into Python.
- Retention (prune_points): points older than a cutoff are deleted; with keep_daily, each (version,
  name, source, UTC day) of them is first kept as ONE point, its daily average, timestamped at the day's
  start, with the source `<source>.daily` and `step` holding how many points it averages. Daily points
  are kept by later prunes with keep_daily, and deleted by a prune without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Avg, CharField, Count, F, Max, Min, QuerySet, Window
from django.db.models.functions import FirstValue, Substr, Trunc
from django.utils import timezone

from models_app.models import SOURCE_PATTERN, SOURCE_RULE, MetricPoint, ModelVersion
from registry_site import audit
from registry_site.errors import InvalidInput, PayloadTooLarge
from registry_site.validators import METRIC_NAME_RULE, is_metric_name, metric_value

MAX_POINTS_PER_REQUEST = 10_000
# A clock a little ahead of ours is tolerated; a point from further in the future is a mistake (a
# timestamp in milliseconds read as seconds, a wrong year) that would sit at the end of every chart.
MAX_FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_SOURCE = "eval"
REGISTRATION_SOURCE = "registration"
DAILY_SUFFIX = ".daily"
MAX_STEP = 2**63 - 1
POINT_FIELDS = frozenset({"name", "value", "timestamp", "step", "source"})
BUCKETS = {"1h": "hour", "1d": "day"}
AGGREGATES = ("avg", "min", "max", "last", "count")
# A summary is for a chart: more rows than this is a request to narrow (since/until, name).
MAX_SUMMARY_ROWS = 10_000

_SOURCE = re.compile(SOURCE_PATTERN)


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


class CleanPoint(NamedTuple):
    """A point whose every field passed its rule (a tuple: 10,000 model instances cost more than the
    insert itself)."""

    name: str
    value: float
    timestamp: datetime
    step: int | None
    source: str


def clean_point(item: Any, *, prefix: str = "", now: datetime | None = None) -> CleanPoint:
    """One point as sent ({name, value, timestamp?, step?, source?}), checked field by field by the same
    rules as MetricPoint's fields and constraints, or InvalidInput naming the field, `prefix` before it
    (`points[3].`)."""
    if not isinstance(item, Mapping):
        raise _refuse(prefix.rstrip(".") or "points", "Each point must be a JSON object {name, value, ...}.")
    unknown = sorted(set(item) - POINT_FIELDS)
    if unknown:
        raise _refuse(f"{prefix}{unknown[0]}", f"Unknown field; a point has {', '.join(sorted(POINT_FIELDS))}.")
    for required in ("name", "value"):
        if required not in item:
            raise _refuse(f"{prefix}{required}", "This field is required.")
    name = item["name"]
    if not is_metric_name(name):
        raise _refuse(f"{prefix}name", f"Not a valid metric name: use {METRIC_NAME_RULE}.")
    try:
        value = metric_value(item["value"])
    except ValueError as exc:
        raise _refuse(f"{prefix}value", f"The value {exc}.") from None
    now = now or timezone.now()
    timestamp = _timestamp(item.get("timestamp"), field=f"{prefix}timestamp", now=now)
    step = item.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP):
        raise _refuse(f"{prefix}step", "Must be a whole number from 0 (or null).")
    source = item.get("source", DEFAULT_SOURCE)
    if not isinstance(source, str) or _SOURCE.match(source) is None:
        raise _refuse(f"{prefix}source", f"Use {SOURCE_RULE}.")
    return CleanPoint(name, value, timestamp, step, source)


def _timestamp(raw: Any, *, field: str, now: datetime) -> datetime:
    if raw is None:
        return now
    parsed = None
    if isinstance(raw, str) and len(raw) <= 40:
        try:
            parsed = datetime.fromisoformat(raw)  # ISO 8601, "Z" included; in C, unlike a regex
        except ValueError:
            parsed = None
    if parsed is None:
        raise _refuse(field, "Must be an ISO 8601 date and time, such as 2026-11-28T14:00:00Z.")
    if parsed.tzinfo is None:  # documented: a time without an offset is UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise _refuse(field, "Out of range.") from None
    if parsed > now + MAX_FUTURE_SKEW:
        raise _refuse(field, f"More than {int(MAX_FUTURE_SKEW.total_seconds() // 60)} minutes in the future.")
    return parsed


def points_from_body(body: Any) -> list[Any]:
    """The points a request sends: one point (an object with `name`), a JSON list of points, or
    {"points": [...]}. Over MAX_POINTS_PER_REQUEST is a 413 naming `points`."""
    if isinstance(body, Mapping) and "points" in body:
        if set(body) != {"points"}:
            extra = sorted(set(body) - {"points"})[0]
            raise _refuse(extra, 'Send a batch as {"points": [...]} with nothing beside it.')
        items = body["points"]
        if not isinstance(items, list):
            raise _refuse("points", "Must be a JSON list of points.")
    elif isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        return [body]
    else:
        raise _refuse("points", "Send one point as a JSON object, or a batch as a JSON list of points.")
    if not items:
        raise _refuse("points", "The batch is empty: send at least one point.")
    if len(items) > MAX_POINTS_PER_REQUEST:
        raise PayloadTooLarge(
            f"points: at most {MAX_POINTS_PER_REQUEST} points per request ({len(items)} sent); split the batch.",
            field="points",
        )
    return items


def record_points(*, version: ModelVersion, points: list[Any], batch: bool = True) -> int:
    """Record `points` (as sent: dicts) for `version`, all or nothing; the number recorded. `batch`
    False: a single point, whose errors name its fields without an index."""
    if len(points) > MAX_POINTS_PER_REQUEST:
        raise PayloadTooLarge(f"points: at most {MAX_POINTS_PER_REQUEST} points per request.", field="points")
    now = timezone.now()
    cleaned = [
        clean_point(item, prefix=f"points[{index}]." if batch else "", now=now) for index, item in enumerate(points)
    ]
    with transaction.atomic():
        if not ModelVersion.objects.filter(pk=version.pk).exists():
            raise InvalidInput("The version was deleted meanwhile.", field="version")
        _insert(version.pk, cleaned)
        audit.record(
            "record_metrics",
            object_type="version",
            object_repr=f"{version.model.name}:{version.version}",
            model_name=version.model.name,
            changes={
                "points": len(cleaned),
                "names": sorted({p.name for p in cleaned})[:50],
                "sources": sorted({p.source for p in cleaned})[:50],
            },
        )
    return len(cleaned)


_COLUMNS = ("version_id", "name", "value", "timestamp", "step", "source")


def _insert(version_id: int, points: list[CleanPoint]) -> None:
    """The checked points in one statement: COPY on PostgreSQL, one executemany (one prepared statement)
    on SQLite. Not bulk_create: it prepares every value of every row through the field's machinery, which cost
    three times the insert itself for a batch of 10,000; the values here are already checked and typed,
    and the table's constraints check them once more."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: one stream for the batch, where even a pipelined executemany pays per row.
            # Binary, with the columns' types declared: no text formatting or parsing of each value.
            copy_sql = "COPY {} ({}) FROM STDIN (FORMAT BINARY)".format(
                quote(MetricPoint._meta.db_table), ", ".join(map(quote, _COLUMNS))
            )
            with cursor.cursor.copy(copy_sql) as copy:
                copy.set_types(["int8", "varchar", "float8", "timestamptz", "int8", "varchar"])
                for p in points:
                    copy.write_row((version_id, p.name, p.value, p.timestamp, p.step, p.source))
            return
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(MetricPoint._meta.db_table), ", ".join(map(quote, _COLUMNS)), ", ".join(["%s"] * len(_COLUMNS))
        )
        adapt = _naive_utc_text if connection.vendor == "sqlite" else connection.ops.adapt_datetimefield_value
        cursor.executemany(sql, [(version_id, p.name, p.value, adapt(p.timestamp), p.step, p.source) for p in points])


def _naive_utc_text(moment: datetime) -> str:
    """What Django's SQLite adapter stores (naive UTC text), without its per-value time zone checks: the
    timestamps here are UTC already (_timestamp)."""
    return str(moment.replace(tzinfo=None))


def record_registered(*, version: ModelVersion, metrics: Mapping[str, float | None]) -> None:
    """Points with the source `registration` for metrics a registration or a change set (a removed one,
    None, has no value to record). Called by models_app.services inside their transaction, under their
    lock, and audited by their event (which names the metrics)."""
    now = timezone.now()
    MetricPoint.objects.bulk_create(
        MetricPoint(version=version, name=name, value=value, timestamp=now, source=REGISTRATION_SOURCE)
        for name, value in sorted(metrics.items())
        if value is not None
    )


def points_of(version: ModelVersion) -> QuerySet[MetricPoint]:
    return MetricPoint.objects.filter(version_id=version.pk)


@dataclass(frozen=True)
class SummaryRow:
    name: str
    source: str
    start: datetime
    value: float
    count: int


WINDOW_AGGREGATES = {"avg": Avg, "min": Min, "max": Max}


def window_values(
    *, version: ModelVersion, window: timedelta | None, source: str | None = None, agg: str = "avg"
) -> tuple[dict[str, float], dict[str, int]]:
    """Each metric of `version` aggregated over its points of the last `window` (all of them: None), from
    `source` only when given: {name: value} and {name: how many points}. One query."""
    points = MetricPoint.objects.filter(version=version)
    if window is not None:
        points = points.filter(timestamp__gte=timezone.now() - window)
    if source is not None:
        points = points.filter(source=source)
    rows = points.order_by().values("name").annotate(value=WINDOW_AGGREGATES[agg]("value"), points=Count("id"))
    return {row["name"]: row["value"] for row in rows}, {row["name"]: row["points"] for row in rows}


def summarize(*, points: QuerySet[MetricPoint], bucket: str, agg: str) -> list[SummaryRow]:
    """`points` (already filtered) by name, source and bucket of time (`1h`, `1d`, in UTC), each bucket
    aggregated by `agg` (avg, min, max, last: the latest point's value, count), in the database. Ordered
    by name, source, bucket start. More than MAX_SUMMARY_ROWS rows: InvalidInput naming `since`."""
    if bucket not in BUCKETS:
        raise _refuse("bucket", f"Use one of: {', '.join(BUCKETS)}.")
    if agg not in AGGREGATES:
        raise _refuse("agg", f"Use one of: {', '.join(AGGREGATES)}.")
    start = _bucket_start(bucket)
    if agg == "last":
        # The latest point of each bucket: a window over the bucket, one row per bucket by DISTINCT.
        partition: list[Any] = [F("name"), F("source"), start]
        rows = (
            points.annotate(
                start=start,
                result=Window(
                    FirstValue("value"), partition_by=partition, order_by=[F("timestamp").desc(), F("id").desc()]
                ),
                points=Window(Count("id"), partition_by=partition),
            )
            .values_list("name", "source", "start", "result", "points")
            .order_by("name", "source", "start")
            .distinct()
        )
    else:
        function = {"avg": Avg, "min": Min, "max": Max, "count": Count}[agg]
        rows = (
            points.annotate(start=start)
            .values("name", "source", "start")
            .annotate(result=function("value"), points=Count("id"))
            .values_list("name", "source", "start", "result", "points")
            .order_by("name", "source", "start")
        )
    found = _first_rows(rows, MAX_SUMMARY_ROWS + 1, grouped=agg != "last")
    if len(found) > MAX_SUMMARY_ROWS:
        raise _refuse("since", f"More than {MAX_SUMMARY_ROWS} buckets: narrow it with since, until or name.")
    return [
        SummaryRow(name, source, _as_utc(start), float(value), count) for name, source, start, value, count in found
    ]


# SQLite keeps a time as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]' (Django's adapter and _insert alike): its
# first 10 or 13 characters are its day or its hour. Cut in C, where Trunc calls a Python function per
# point: 2.2 s instead of 10.7 s over 1,000,000 points (load 10, bench/admin_charts.py).
_SQLITE_BUCKET_CHARS = {"1h": 13, "1d": 10}


def _bucket_start(bucket: str) -> Any:
    if connection.vendor == "sqlite":
        return Substr("timestamp", 1, _SQLITE_BUCKET_CHARS[bucket], output_field=CharField())
    return Trunc("timestamp", BUCKETS[bucket], tzinfo=UTC)


def _as_utc(start: datetime | str) -> datetime:
    """A bucket's start as an aware UTC datetime, from Trunc's datetime or SQLite's cut text."""
    if isinstance(start, str):
        return datetime.fromisoformat(start).replace(tzinfo=UTC)
    return start


def _first_rows(rows: QuerySet, limit: int, *, grouped: bool) -> list[tuple]:
    """The first `limit` (name, source, start, result, points) rows of a summary, in that order. On
    PostgreSQL a GROUP BY is grouped in a materialized CTE and ordered and limited outside it: given ORDER
    BY and LIMIT on the grouped query itself, the planner streams every point through a sort into a
    GroupAggregate so as to stop early, which took 3.0 s over 1,000,000 points on the development machine
    (load 10) where hashing them and sorting the few hundred groups took 1.45 s (bench/admin_charts.py)."""
    if not grouped or connection.vendor != "postgresql":
        return list(rows[:limit])
    sql, params = rows.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH grouped AS MATERIALIZED ({sql}) SELECT * FROM grouped ORDER BY 1, 2, 3 LIMIT %s", (*params, limit)
        )
        # Past Django's converters: the bucket's start comes back as UTC without its zone (Trunc's tzinfo).
        return [(name, source, start.replace(tzinfo=UTC), *rest) for name, source, start, *rest in cursor.fetchall()]


def series(rows: Iterable[SummaryRow]) -> list[dict[str, Any]]:
    """Summary rows as one series per (name, source), for a chart."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if not out or (out[-1]["name"], out[-1]["source"]) != (row.name, row.source):
            out.append({"name": row.name, "source": row.source, "buckets": []})
        out[-1]["buckets"].append({"start": row.start, "value": row.value, "count": row.count})
    return out


@dataclass(frozen=True)
class PruneReport:
    deleted: int
    kept_daily: int


def prune_points(*, older_than: timedelta, keep_daily: bool = False) -> PruneReport:
    """Delete every point older than `older_than` (before now minus it). With `keep_daily`, each (version,
    name, source, UTC day) of them becomes one point first: see the module's docstring."""
    if older_than <= timedelta(0):
        raise _refuse("older_than", "Must be a positive duration, such as 90d.")
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        old = MetricPoint.objects.filter(timestamp__lt=cutoff)
        kept = 0
        if keep_daily:
            old = old.exclude(source__endswith=DAILY_SUFFIX)
            days = (
                old.annotate(day=Trunc("timestamp", "day", tzinfo=UTC))
                .values("version_id", "name", "source", "day")
                .annotate(average=Avg("value"), points=Count("id"))
                .order_by()
            )
            daily = [
                MetricPoint(
                    version_id=row["version_id"],
                    name=row["name"],
                    source=f"{row['source']}{DAILY_SUFFIX}",
                    timestamp=row["day"],
                    value=row["average"],
                    step=row["points"],
                )
                for row in days.iterator(chunk_size=5_000)
            ]
            kept = len(MetricPoint.objects.bulk_create(daily, batch_size=2_000))
            # The daily points just made are not "old" by the exclusion above; the rest goes.
        deleted, _ = old.delete()
        audit.record(
            "prune_metrics",
            object_type="metric_points",
            object_repr=f"older than {cutoff.isoformat()}",
            changes={"deleted": deleted, "kept_daily": kept},
        )
    return PruneReport(deleted=deleted, kept_daily=kept)


def parse_duration(text: str, *, field: str = "older_than") -> timedelta:
    """'90d', '12h', '30m', '2w' as a timedelta; InvalidInput naming `field` otherwise."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isascii() or not number.isdigit() or int(number) == 0 or len(number) > 6:
        raise _refuse(field, f"{text!r} is not a duration: use a whole number and a unit, such as 90d, 12h, 30m, 2w.")
    return timedelta(**{units[unit]: int(number)})
