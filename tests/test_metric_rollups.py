"""The hourly rollups behind the metric summary (issue #9, section 2): after every write (a batch, a
registration, a prune) they equal an aggregate of the points; batches into one hour at the same time are
all counted on PostgreSQL; a summary read from them (and from the points at its part-hour edges) is the one
computed from the points; migration 0009 makes them for the points recorded before it."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from models_app import metric_history, services
from models_app.models import MetricPoint, MetricRollup

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def rollups_from_points() -> dict[tuple, tuple]:
    """What the rollups must hold, computed here from every point: per (version, name, source, hour) the
    count, sum, min, max, first and last time, and the latest point's value and id (by time, then id)."""
    hours: dict[tuple, list] = {}
    rows = MetricPoint.objects.order_by("timestamp", "id").values_list(
        "id", "version_id", "name", "source", "timestamp", "value"
    )
    for point_id, version_id, name, source, at, value in rows:
        key = (version_id, name, source, hour_of(at))
        if key not in hours:
            hours[key] = [0, 0.0, value, value, at, at, value, point_id]
        hour = hours[key]
        hour[0] += 1
        hour[1] += value
        hour[2], hour[3] = min(hour[2], value), max(hour[3], value)
        hour[5], hour[6], hour[7] = at, value, point_id  # ordered by time then id: this one is the latest
    return {key: tuple(hour) for key, hour in hours.items()}


def assert_rollups_match_points() -> None:
    expected = rollups_from_points()
    stored = {
        (r.version_id, r.name, r.source, r.hour): (
            r.count, r.total, r.minimum, r.maximum, r.first_at, r.last_at, r.last_value, r.last_id
        )
        for r in MetricRollup.objects.all()
    }  # fmt: skip
    assert stored.keys() == expected.keys()
    for key, (count, total, *exact) in expected.items():
        assert stored[key][0] == count, key
        assert stored[key][1] == pytest.approx(total, rel=1e-9, abs=1e-9), key
        assert list(stored[key][2:]) == exact, key


def summary_from_points(version, *, bucket, agg, name=None, source=None, since=None, until=None) -> list[tuple]:
    """The summary as the points alone give it (what the registry answered before it had rollups)."""
    buckets: dict[tuple, list] = defaultdict(list)
    for point_id, point_name, point_source, at, value in MetricPoint.objects.filter(version=version).values_list(
        "id", "name", "source", "timestamp", "value"
    ):
        if (name and point_name != name) or (source and point_source != source):
            continue
        if (since is not None and at < since) or (until is not None and at >= until):
            continue
        start = hour_of(at) if bucket == "1h" else at.replace(hour=0, minute=0, second=0, microsecond=0)
        buckets[(point_name, point_source, start)].append((at, point_id, value))
    rows = []
    for key, found in sorted(buckets.items()):
        values = [value for _, _, value in found]
        result = {
            "avg": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "last": max(found)[2],
            "count": float(len(values)),
        }[agg]
        rows.append((*key, result, len(values)))
    return rows


def summary(version, **query) -> list[tuple]:
    rows = metric_history.summarize(version=version, **query)
    return [(r.name, r.source, r.start, r.value, r.count) for r in rows]


def assert_same_summary(version, **query) -> None:
    got, expected = summary(version, **query), summary_from_points(version, **query)
    assert [row[:3] + row[4:] for row in got] == [row[:3] + row[4:] for row in expected], query
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[3] == pytest.approx(theirs[3], rel=1e-9, abs=1e-12), (query, mine, theirs)


@pytest.fixture
def version(make_version):
    return make_version(data=None)


def random_batch(rng: random.Random, size: int) -> list[dict]:
    """Points over three days, many at the same instant (ties are broken by the later point), some on the
    hour exactly, names and sources mixed."""
    instants = [START + timedelta(seconds=rng.randrange(3 * 86_400)) for _ in range(size // 3)]
    instants += [START + timedelta(hours=rng.randrange(72)) for _ in range(5)]
    return [
        {
            "name": rng.choice(["auc", "loss"]),
            "source": rng.choice(["eval", "canary"]),
            "value": rng.choice([rng.uniform(-5, 5), float(rng.randrange(10))]),
            "timestamp": iso(rng.choice(instants) + timedelta(microseconds=rng.choice([0, 0, 250_000]))),
        }
        for _ in range(size)
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_summary_equals_one_computed_from_the_points(version, seed):
    rng = random.Random(seed)
    for _ in range(4):  # several batches: the later ones add to the hours the earlier ones made
        metric_history.record_points(version=version, points=random_batch(rng, 300))
    services.update_version(version=version, changes={"metrics": {"auc": 0.5}})  # a registration point
    assert_rollups_match_points()

    def moment() -> datetime:
        at = START + timedelta(minutes=rng.randrange(-120, 74 * 60))
        return at if rng.random() < 0.3 else at + timedelta(seconds=rng.randrange(1, 3600))

    windows: list[tuple] = [(None, None), (START + timedelta(minutes=90), None), (None, START + timedelta(hours=30))]
    windows += [tuple(sorted((moment(), moment()))) for _ in range(6)]
    inside = START + timedelta(hours=5, minutes=10)
    windows += [(inside, inside + timedelta(minutes=20)), (inside, inside), (inside, inside - timedelta(hours=2))]
    windows += [(inside, inside + timedelta(minutes=50)), (START + timedelta(hours=5), START + timedelta(hours=6))]
    for since, until in windows:
        for bucket in ("1h", "1d"):
            for agg in metric_history.AGGREGATES:
                assert_same_summary(version, bucket=bucket, agg=agg, since=since, until=until)
        assert_same_summary(version, bucket="1d", agg="last", name="loss", source="canary", since=since, until=until)


def test_the_summary_route_reads_the_rollups_and_the_edges(api, version):
    items = [
        {"name": "a", "value": 1.0, "timestamp": "2026-03-01T10:10:00Z"},
        {"name": "a", "value": 5.0, "timestamp": "2026-03-01T10:50:00Z"},
        {"name": "a", "value": 3.0, "timestamp": "2026-03-01T11:30:00Z"},
        {"name": "a", "value": 9.0, "timestamp": "2026-03-01T12:20:00Z"},
    ]
    assert api.post(f"/models/{version.model.name}/versions/v1/metrics", items, format="json").status_code == 201
    base = f"/models/{version.model.name}/versions/v1/metrics/summary"
    # 10:30-12:30: 5.0 from the points of 10:xx, 3.0 from the rollup of 11:00, 9.0 from the points of 12:xx.
    body = api.get(base, {"since": "2026-03-01T10:30:00Z", "until": "2026-03-01T12:30:00Z", "agg": "avg"}).json()
    assert body["series"] == [
        {"name": "a", "source": "eval", "buckets": [{"start": "2026-03-01T00:00:00Z", "value": 17 / 3, "count": 3}]}
    ]
    hourly = api.get(base, {"bucket": "1h", "agg": "last", "since": "2026-03-01T10:05:00+02:00"}).json()
    assert [(b["start"], b["value"], b["count"]) for b in hourly["series"][0]["buckets"]] == [
        ("2026-03-01T10:00:00Z", 5.0, 2),
        ("2026-03-01T11:00:00Z", 3.0, 1),
        ("2026-03-01T12:00:00Z", 9.0, 1),
    ]


def test_a_summary_is_not_paginated(api, version):
    base = f"/models/{version.model.name}/versions/v1/metrics"
    for query in ("cursor=abc", "page_size=10"):
        response = api.get(f"{base}/summary?{query}")
        assert response.status_code == 400, response.content
        assert query.split("=")[0] in response.json()["errors"]
    assert api.get(f"{base}?page_size=10").status_code == 200  # the list pages


def test_the_schema_says_whose_name_is_whose(api):
    schema = api.get("/openapi.json").json()
    path = schema["paths"]["/models/{name}/versions/{version}/metrics"]["get"]
    summary_path = schema["paths"]["/models/{name}/versions/{version}/metrics/summary"]["get"]
    for operation in (path, summary_path):
        (metric,) = [p for p in operation["parameters"] if p["name"] == "name" and p["in"] == "query"]
        assert "metric" in metric["description"] and "{name}" in metric["description"]
    assert not {"cursor", "page_size"} & {p["name"] for p in summary_path["parameters"]}


# --- Retention --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep_daily", [False, True])
def test_prune_keeps_points_and_rollups_consistent(version, make_version, keep_daily):
    now = timezone.now()
    other = make_version(version.model, "v2", data=None)
    rng = random.Random(7)
    for target in (version, other):
        for days_ago in (100, 91, 90, 89, 10):
            base = now - timedelta(days=days_ago)
            batch = [
                {"name": "a", "value": rng.uniform(0, 1), "timestamp": iso(base + timedelta(minutes=rng.randrange(-90, 90)))}
                for _ in range(40)
            ]  # fmt: skip
            metric_history.record_points(version=target, points=[p for p in batch if p["timestamp"] < iso(now)])
    report = metric_history.prune_points(older_than=timedelta(days=90), keep_daily=keep_daily)
    assert report.deleted > 0
    cutoff = hour_of(now - timedelta(days=90))  # rounded down to the hour: each hour pruned whole
    assert not MetricPoint.objects.filter(timestamp__lt=cutoff).exclude(source="eval.daily").exists()
    assert MetricPoint.objects.filter(timestamp__gte=cutoff, timestamp__lt=cutoff + timedelta(hours=1)).exists()
    assert_rollups_match_points()
    assert (report.kept_daily > 0) is keep_daily
    # A prune again (the daily points kept, or deleted without --keep-daily) still agrees.
    metric_history.prune_points(older_than=timedelta(days=30), keep_daily=keep_daily)
    assert_rollups_match_points()
    metric_history.prune_points(older_than=timedelta(days=30))
    assert_rollups_match_points()
    assert not MetricPoint.objects.filter(timestamp__lt=now - timedelta(days=31)).exists()


# --- Concurrency --------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_into_the_same_hours_are_all_counted(make_version):
    """Four threads, each its own connection and transactions, send batches into the same hours at once:
    every point is counted (ON CONFLICT waits for the other batch's row, then adds to it)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one transaction at a time; the race is PostgreSQL's")
    version = make_version(data=None)
    threads, batches, size = 4, 5, 200
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def ingest(number: int) -> None:
        try:
            rng = random.Random(number)
            barrier.wait()
            for _ in range(batches):
                points = [
                    {
                        "name": rng.choice(["a", "b"]),
                        "value": rng.uniform(0, 1),
                        "source": "canary",
                        # Three hours, the same instants in every thread: the same rows and ties of time.
                        "timestamp": iso(START + timedelta(minutes=rng.randrange(180))),
                    }
                    for _ in range(size)
                ]
                metric_history.record_points(version=version, points=points)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=ingest, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert MetricPoint.objects.count() == threads * batches * size
    assert sum(MetricRollup.objects.values_list("count", flat=True)) == threads * batches * size
    assert_rollups_match_points()
    for agg in metric_history.AGGREGATES:
        assert_same_summary(version, bucket="1h", agg=agg)


# --- Migration ----------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_the_rollups_of_existing_points():
    executor = MigrationExecutor(connection)
    before = [("models_app", "0008_metric_directions")]
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        Model = apps.get_model("models_app", "RegisteredModel")
        Version = apps.get_model("models_app", "ModelVersion")
        Point = apps.get_model("models_app", "MetricPoint")
        model = Model.objects.create(name="legacy", model_type="audio")
        versions = [Version.objects.create(model=model, version=v, format="onnx") for v in ("v1", "v2")]
        rng = random.Random(3)
        Point.objects.bulk_create(
            Point(
                version=rng.choice(versions),
                name=rng.choice(["auc", "loss"]),
                source=rng.choice(["eval", "production"]),
                value=rng.uniform(-1, 1),
                timestamp=START + timedelta(minutes=rng.randrange(0, 600, 7)),  # ties of time too
            )
            for _ in range(500)
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert MetricRollup.objects.exists()
    assert_rollups_match_points()
