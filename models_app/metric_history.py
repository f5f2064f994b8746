"""A version's metric history (issue #9, section 2): time-stamped observations (MetricPoint), recorded
one at a time or in batches, listed, summarized in time buckets for charts, and pruned.

- Recording validates every point before anything is written, then writes the batch in one transaction:
  all or nothing. Each problem names its field, with the point's index in a batch (`points[3].value`).
- Every write of points goes through _write, which also adds the batch to the hourly rollups
  (MetricRollup: per version, name, source and UTC hour, the count, sum, min, max, first and last time and
  the latest point's value), aggregated in Python and upserted with one INSERT ... ON CONFLICT DO UPDATE
  that adds to what is there. The upsert is in the points' transaction, so the rollups always equal an
  aggregate of the points; two batches into the same hour, even at the same time on PostgreSQL, are both
  counted (the second upsert waits for the first's row lock, then adds to the committed row). The
  rows are upserted in key order, so two batches never wait for each other crosswise.
- Points are append-only and never updated, so recording takes no row lock of its own: the foreign key
  already holds the version's key against a concurrent delete (PostgreSQL takes a KEY SHARE lock for it),
  and a lock of the version or model row would serialize every ingest of that model for nothing.
- A batch is audited as ONE event (how many points, which names and sources), never per point: a client
  may send tens of thousands of points a second, and an audit row per point would double the writes
  and drown the trail's other events; the points themselves are the record of what was sent.
- Registering a version with metrics and changing one later record points with the source
  `registration` (record_registered, called by models_app.services, which every door goes through).
- Each recorded batch is announced once, after it committed, by the `points_recorded` signal (the
  version, the names and sources it held): deployments_app.alerts evaluates the model's alert rules on it.
  A listener that fails is logged by Django (on_commit's `robust`), never the ingest's failure.
- Summaries read the rollups for every whole hour (a 1-day bucket groups 24 of them), and the points
  only for the part-hours at the edges of `since`/`until`; both are aggregated in the database (GROUP BY, a
  window function for `last`) and the at most two parts of a bucket combined in Python. The result is the
  one a computation from the points gives (up to the order of a float sum), in a few hundred rows read
  instead of every point: 1,000,000 points of one version are ~15,000 rollups.
- Retention (prune_points): points older than a cutoff are deleted; with keep_daily, each (version,
  name, source, UTC day) of them is first kept as ONE point, its daily average, timestamped at the day's
  start, with the source `<source>.daily` and `step` holding how many points it averages. Daily points
  are kept by later prunes with keep_daily, and deleted by a prune without it. The cutoff is rounded down
  to a whole UTC hour, so that a rollup's hour is pruned whole, with its points; the daily points are
  written through _write like any other, so their rollups follow. (The rollups are not kept in place of
  the points: the list and the comparison read points, and would disagree with the summary.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Avg, Count, F, Max, Min, QuerySet, Sum, Window
from django.db.models.functions import FirstValue, Trunc
from django.dispatch import Signal
from django.utils import timezone

from models_app.models import SOURCE_PATTERN, SOURCE_RULE, MetricPoint, MetricRollup, ModelVersion
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

# Sent once per recorded batch after its transaction committed, with `version`, `names` and `sources`
# (frozensets): for the parts that watch the history without models_app knowing them (alert rules).
points_recorded = Signal()


def _announce(version: ModelVersion, names: frozenset[str], sources: frozenset[str]) -> None:
    def announce_points() -> None:  # a named function: Django's log of a failing hook names it
        points_recorded.send(sender=MetricPoint, version=version, names=names, sources=sources)

    transaction.on_commit(announce_points, robust=True)


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
        _write(version.pk, cleaned)
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
        _announce(version, frozenset(p.name for p in cleaned), frozenset(p.source for p in cleaned))
    return len(cleaned)


_COLUMNS = ("id", "version_id", "name", "value", "timestamp", "step", "source")
_ROLLUP_COLUMNS = (
    "version_id", "name", "source", "hour", "count", "total", "minimum", "maximum", "first_at", "last_at",
    "last_value", "last_id",
)  # fmt: skip


def _write(version_id: int, points: list[CleanPoint]) -> None:
    """The checked points and their hourly rollups, inside the caller's transaction: every write of points
    comes here, so the rollups always equal an aggregate of the points."""
    ids = _insert(version_id, points)
    _upsert_rollups(version_id, _roll_up(points, ids))


def _insert(version_id: int, points: list[CleanPoint]) -> list[int]:
    """The checked points in one statement: COPY on PostgreSQL, one executemany (one prepared statement)
    on SQLite; their ids, in order. Not bulk_create: it prepares every value of every row through the
    field's machinery, which cost three times the insert itself for a batch of 10,000; the values here are
    already checked and typed, and the table's constraints check them once more."""
    quote = connection.ops.quote_name
    table = MetricPoint._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The ids first (COPY returns none): the rollups keep the latest point's id, the tie-break
            # of two points at the same time, as the points' own order has it.
            # MATERIALIZED: the sequence's name looked up once, not once per id (a subquery in FROM would
            # be pulled up into the nextval call: four times slower).
            cursor.execute(
                "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq) "
                "SELECT nextval(s.seq) FROM s, generate_series(1, %s)",
                [table, len(points)],
            )
            ids = sorted(row[0] for row in cursor.fetchall())
            # COPY: one stream for the batch, where even a pipelined executemany pays per row.
            # Binary, with the columns' types declared: no text formatting or parsing of each value.
            copy_sql = "COPY {} ({}) FROM STDIN (FORMAT BINARY)".format(quote(table), ", ".join(map(quote, _COLUMNS)))
            with cursor.cursor.copy(copy_sql) as copy:
                copy.set_types(["int8", "int8", "varchar", "float8", "timestamptz", "int8", "varchar"])
                for point_id, p in zip(ids, points, strict=True):
                    copy.write_row((point_id, version_id, p.name, p.value, p.timestamp, p.step, p.source))
            return ids
        columns = _COLUMNS[1:]
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(table), ", ".join(map(quote, columns)), ", ".join(["%s"] * len(columns))
        )
        cursor.executemany(
            sql, [(version_id, p.name, p.value, _naive_utc_text(p.timestamp), p.step, p.source) for p in points]
        )
        # SQLite writes one transaction at a time, and AUTOINCREMENT gives the rows of one statement
        # consecutive ids: the last one tells them all.
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
        return list(range(last - len(points) + 1, last + 1))


def _naive_utc_text(moment: datetime) -> str:
    """What Django's SQLite adapter stores (naive UTC text), without its per-value time zone checks: the
    timestamps here are UTC already (_timestamp)."""
    return str(moment.replace(tzinfo=None))


class _Hour(NamedTuple):
    points: int
    total: float
    minimum: float
    maximum: float
    first_at: datetime
    last_at: datetime
    last_value: float
    last_id: int


def _roll_up(points: list[CleanPoint], ids: list[int]) -> dict[tuple[str, str, datetime], _Hour]:
    """The batch's points per (name, source, UTC hour), aggregated as a rollup row holds them."""
    hours: dict[tuple[str, str, datetime], list[Any]] = {}
    for point_id, (name, value, timestamp, _step, source) in zip(ids, points, strict=True):
        key = (name, source, timestamp.replace(minute=0, second=0, microsecond=0))
        hour = hours.get(key)
        if hour is None:
            hours[key] = [1, value, value, value, timestamp, timestamp, value, point_id]
            continue
        hour[0] += 1
        hour[1] += value
        if value < hour[2]:
            hour[2] = value
        if value > hour[3]:
            hour[3] = value
        if timestamp < hour[4]:
            hour[4] = timestamp
        if timestamp > hour[5] or (timestamp == hour[5] and point_id > hour[7]):
            hour[5], hour[6], hour[7] = timestamp, value, point_id
    return {key: _Hour(*hour) for key, hour in hours.items()}


def _upsert_rollups(version_id: int, hours: Mapping[tuple[str, str, datetime], _Hour]) -> None:
    """Add these hours to the version's rollups: INSERT ... ON CONFLICT DO UPDATE, adding counts and sums
    and keeping the smaller minimum, the larger maximum and the later last point (by time, then id). In
    key order, so that two batches lock the rows they share in the same order."""
    quote = connection.ops.quote_name
    table = quote(MetricRollup._meta.db_table)
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    old, new = table, "excluded"
    later = f"({new}.last_at > {old}.last_at OR ({new}.last_at = {old}.last_at AND {new}.last_id > {old}.last_id))"
    assignments = ", ".join(
        [
            f"{quote('count')} = {old}.{quote('count')} + {new}.{quote('count')}",
            f"total = {old}.total + {new}.total",
            f"minimum = {least}({old}.minimum, {new}.minimum)",
            f"maximum = {greatest}({old}.maximum, {new}.maximum)",
            f"first_at = {least}({old}.first_at, {new}.first_at)",
            f"last_value = CASE WHEN {later} THEN {new}.last_value ELSE {old}.last_value END",
            f"last_id = CASE WHEN {later} THEN {new}.last_id ELSE {old}.last_id END",
            # Last: the two above compare with the row's last_at as it was.
            f"last_at = {greatest}({old}.last_at, {new}.last_at)",
        ]
    )
    adapt = (lambda moment: moment) if connection.vendor == "postgresql" else _naive_utc_text
    rows = [
        (version_id, name, source, adapt(hour), h.points, h.total, h.minimum, h.maximum, adapt(h.first_at),
         adapt(h.last_at), h.last_value, h.last_id)
        for (name, source, hour), h in sorted(hours.items())
    ]  # fmt: skip
    row_sql = "({})".format(", ".join(["%s"] * len(_ROLLUP_COLUMNS)))
    per_statement = 500 if connection.vendor == "postgresql" else 999 // len(_ROLLUP_COLUMNS)
    with connection.cursor() as cursor:
        for first in range(0, len(rows), per_statement):
            chunk = rows[first : first + per_statement]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(map(quote, _ROLLUP_COLUMNS))}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT (version_id, name, source, hour) DO UPDATE SET {assignments}",
                [value for row in chunk for value in row],
            )


def record_registered(*, version: ModelVersion, metrics: Mapping[str, float | None]) -> None:
    """Points with the source `registration` for metrics a registration or a change set (a removed one,
    None, has no value to record). Called by models_app.services inside their transaction, under their
    lock, and audited by their event (which names the metrics)."""
    now = timezone.now()
    points = [
        CleanPoint(name, float(value), now, None, REGISTRATION_SOURCE)
        for name, value in sorted(metrics.items())
        if value is not None
    ]
    if points:
        _write(version.pk, points)
        _announce(version, frozenset(p.name for p in points), frozenset({REGISTRATION_SOURCE}))


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


@dataclass
class _Part:
    """What a bucket's value is computed from: the points' count, sum, min, max and latest point (time,
    id, value); from the rollups, from the points at an edge, or both combined."""

    count: int
    total: float
    minimum: float
    maximum: float
    last: tuple[datetime, int, float] | None

    def add(self, other: _Part) -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        if other.last is not None and (self.last is None or other.last[:2] > self.last[:2]):
            self.last = other.last

    def value(self, agg: str) -> float:
        if agg == "avg":
            return self.total / self.count
        if agg == "last":
            assert self.last is not None
            return self.last[2]
        return float({"min": self.minimum, "max": self.maximum, "count": self.count}[agg])


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _hour_ceiling(moment: datetime) -> datetime:
    floor = _hour_floor(moment)
    try:
        return floor if floor == moment else floor + timedelta(hours=1)
    except OverflowError:  # in the last hour of year 9999: no whole hour follows
        return datetime.max.replace(tzinfo=UTC)


Span = tuple[datetime | None, datetime | None]


def _split(since: datetime | None, until: datetime | None) -> tuple[Span | None, list[tuple[datetime, datetime]]]:
    """[since, until) as the whole UTC hours in it, [first, end) (None: no whole hour; an open end: None),
    and the part-hours left at its edges, which only the points can answer for."""
    since = None if since is None else since.astimezone(UTC)
    until = None if until is None else until.astimezone(UTC)
    if since is not None and until is not None and _hour_ceiling(since) >= _hour_floor(until):
        return None, [(since, until)] if since < until else []
    edges = []
    first = end = None
    if since is not None:
        first = _hour_ceiling(since)
        if since < first:
            edges.append((since, first))
    if until is not None:
        end = _hour_floor(until)
        if end < until:
            edges.append((end, until))
    return (first, end), edges


def summarize(
    *,
    version: ModelVersion,
    bucket: str,
    agg: str,
    name: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[SummaryRow]:
    """The version's points (only `name`'s and `source`'s when given; at or after `since`, before `until`)
    by name, source and bucket of time (`1h`, `1d`, in UTC), each bucket aggregated by `agg` (avg, min,
    max, last: the latest point's value, count). Whole hours are read from the rollups, the part-hours at
    `since` and `until` from the points (see the module's docstring). Ordered by name, source, bucket
    start. More than MAX_SUMMARY_ROWS rows: InvalidInput naming `since`."""
    if bucket not in BUCKETS:
        raise _refuse("bucket", f"Use one of: {', '.join(BUCKETS)}.")
    if agg not in AGGREGATES:
        raise _refuse("agg", f"Use one of: {', '.join(AGGREGATES)}.")
    series_filter: dict[str, Any] = {"version_id": version.pk}
    if name:
        series_filter["name"] = name
    if source:
        series_filter["source"] = source
    whole, edges = _split(since, until)
    parts: dict[tuple[str, str, datetime], _Part] = {}
    if whole is not None:
        first_hour, end_hour = whole
        rollups = MetricRollup.objects.filter(**series_filter)
        if first_hour is not None:
            rollups = rollups.filter(hour__gte=first_hour)
        if end_hour is not None:
            rollups = rollups.filter(hour__lt=end_hour)
        start = F("hour") if bucket == "1h" else Trunc("hour", BUCKETS[bucket], tzinfo=UTC)
        found = _parts(rollups, start, agg, count="count", total="total", minimum="minimum", maximum="maximum",
                       last=("last_at", "last_id", "last_value"), limit=MAX_SUMMARY_ROWS + 1)  # fmt: skip
        if len(found) > MAX_SUMMARY_ROWS:
            raise _refuse("since", f"More than {MAX_SUMMARY_ROWS} buckets: narrow it with since, until or name.")
        parts.update(found)
    for low, high in edges:  # one query each: a range of the index (version, timestamp, id), not an OR
        points = MetricPoint.objects.filter(timestamp__gte=low, timestamp__lt=high, **series_filter)
        start = Trunc("timestamp", BUCKETS[bucket], tzinfo=UTC)
        found = _parts(points, start, agg, count="id", total="value", minimum="value", maximum="value",
                       last=("timestamp", "id", "value"), limit=None, counting=True)  # fmt: skip
        for key, part in found.items():
            if key in parts:
                parts[key].add(part)
            else:
                parts[key] = part
    if len(parts) > MAX_SUMMARY_ROWS:
        raise _refuse("since", f"More than {MAX_SUMMARY_ROWS} buckets: narrow it with since, until or name.")
    return [
        SummaryRow(name, source, start, part.value(agg), part.count)
        for (name, source, start), part in sorted(parts.items())
    ]


def _parts(
    rows: QuerySet[Any],
    start: Any,
    agg: str,
    *,
    count: str,
    total: str,
    minimum: str,
    maximum: str,
    last: tuple[str, str, str],
    limit: int | None,
    counting: bool = False,
) -> dict[tuple[str, str, datetime], _Part]:
    """`rows` (rollups or points) per (name, source, bucket start) as _Parts, in one query: GROUP BY for the
    count, sum, min and max; for `last`, window functions over the bucket ordered by time then id (one row
    per bucket by DISTINCT). `counting`: the rows are points (count them), not rollups (add their counts)."""
    how_many = Count(count) if counting else Sum(count)
    if agg == "last":
        partition: list[Any] = [F("name"), F("source"), start]
        latest = [F(last[0]).desc(), F(last[1]).desc()]
        query = (
            rows.annotate(
                start=start,
                n=Window(how_many, partition_by=partition),
                latest_at=Window(FirstValue(last[0]), partition_by=partition, order_by=latest),
                latest_key=Window(FirstValue(last[1]), partition_by=partition, order_by=latest),
                latest_value=Window(FirstValue(last[2]), partition_by=partition, order_by=latest),
            )
            .values_list("name", "source", "start", "n", "latest_at", "latest_key", "latest_value")
            .order_by("name", "source", "start")
            .distinct()
        )
        found = list(query if limit is None else query[:limit])
        return {
            (name, source, start): _Part(int(n), 0.0, 0.0, 0.0, (at, key, value))
            for name, source, start, n, at, key, value in found
        }
    query = (
        rows.annotate(start=start)
        .values("name", "source", "start")
        .annotate(n=how_many, sum=Sum(total), low=Min(minimum), high=Max(maximum))
        .values_list("name", "source", "start", "n", "sum", "low", "high")
        .order_by("name", "source", "start")
    )
    found = list(query if limit is None else query[:limit])
    return {
        (name, source, start): _Part(int(n), float(total_), float(low), float(high), None)
        for name, source, start, n, total_, low, high in found
    }


def summary_of(*, version: ModelVersion, filters: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's answer for checked `filters` (bucket, agg, name, source, since, until; the first two
    default to 1d and avg): what GET .../metrics/summary and `manage.py metrics summary` give."""
    bucket, agg = filters.get("bucket") or "1d", filters.get("agg") or "avg"
    rows = summarize(
        version=version,
        bucket=bucket,
        agg=agg,
        name=filters.get("name") or None,
        source=filters.get("source") or None,
        since=filters.get("since"),
        until=filters.get("until"),
    )
    return {"bucket": bucket, "agg": agg, "series": series(rows)}


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
    """Delete every point older than `older_than` (before now minus it, rounded down to the hour) and its
    rollups. With `keep_daily`, each (version, name, source, UTC day) of them becomes one point first: see
    the module's docstring."""
    if older_than <= timedelta(0):
        raise _refuse("older_than", "Must be a positive duration, such as 90d.")
    cutoff = _hour_floor(timezone.now() - older_than)
    with transaction.atomic():
        old = MetricPoint.objects.filter(timestamp__lt=cutoff)
        old_rollups = MetricRollup.objects.filter(hour__lt=cutoff)
        daily: dict[int, list[CleanPoint]] = {}
        if keep_daily:
            old = old.exclude(source__endswith=DAILY_SUFFIX)
            old_rollups = old_rollups.exclude(source__endswith=DAILY_SUFFIX)
            days = (
                old.annotate(day=Trunc("timestamp", "day", tzinfo=UTC))
                .values("version_id", "name", "source", "day")
                .annotate(average=Avg("value"), points=Count("id"))
                .order_by()
            )
            for row in days.iterator(chunk_size=5_000):
                daily.setdefault(row["version_id"], []).append(
                    CleanPoint(row["name"], row["average"], row["day"], row["points"], f"{row['source']}{DAILY_SUFFIX}")
                )
        # The rollups before the points: an ingest of old points meanwhile (on PostgreSQL) either upserted
        # its rollup first, and this waits for it and its points are then seen by the DELETE below, or it
        # waits for this, and then makes its rollup anew beside its points. Either way the two agree.
        old_rollups.delete()
        deleted, _ = old.delete()
        for version_id, points in daily.items():
            _write(version_id, points)
        audit.record(
            "prune_metrics",
            object_type="metric_points",
            object_repr=f"older than {cutoff.isoformat()}",
            changes={"deleted": deleted, "kept_daily": sum(map(len, daily.values()))},
        )
    return PruneReport(deleted=deleted, kept_daily=sum(map(len, daily.values())))


def parse_duration(text: str, *, field: str = "older_than") -> timedelta:
    """'90d', '12h', '30m', '2w' as a timedelta; InvalidInput naming `field` otherwise."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isascii() or not number.isdigit() or int(number) == 0 or len(number) > 6:
        raise _refuse(field, f"{text!r} is not a duration: use a whole number and a unit, such as 90d, 12h, 30m, 2w.")
    return timedelta(**{units[unit]: int(number)})
