#!/usr/bin/env python3
"""Metric history at scale (issue #9, section 2): batch ingest in points per second (goal: 20,000 on
SQLite and on PostgreSQL), through the service and through the HTTP API, and the 1-day-bucket summary
over 1,000,000 points of one version (goal: under 200 ms on PostgreSQL).

In-process, against the database of DATABASE_URL (migrated; default SQLite ./data). It makes (once;
kept for later runs) a model `bench-metric-ingest` with a version `ingest` (emptied before each run) and a
version `summary` holding --summary-points points: 10 names x 2 sources, one point every few seconds
over ~30 days. Prints one JSON line per measurement.

- ingest, service: --batches batches of 10,000 points (5 names, timestamps and steps) through
  models_app.metric_history.record_points (validation, one bulk insert, the hourly rollups' upsert, one audit
  event, one commit).
- ingest, api: the same batches as JSON bodies POSTed to /models/{m}/versions/{v}/metrics through
  Django's test client (the whole middleware stack, JSON parsing, the view; no socket). The client's
  own encoding of the body is done before the clock starts.
- summary: GET .../metrics/summary?bucket=1d&agg=avg over the whole 1,000,000-point version (and
  ?agg=last, the window-function path; and a window whose since/until are not on the hour, which reads
  the points of its two part-hours too), median and p90 over --runs requests, and the plan PostgreSQL
  chose for the rollups' query.

    .venv/bin/python bench/metric_ingest.py --summary-points 0        # SQLite: ingest only
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/metric_ingest.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from models_app import metric_history  # noqa: E402
from models_app.models import MetricPoint, MetricRollup, ModelVersion, RegisteredModel  # noqa: E402

MODEL = "bench-metric-ingest"
BATCH = metric_history.MAX_POINTS_PER_REQUEST


def version_named(model: RegisteredModel, name: str) -> ModelVersion:
    return ModelVersion.objects.get_or_create(model=model, version=name, defaults={"format": "onnx"})[0]


def batch(number: int) -> list[dict]:
    start = timezone.now() - timedelta(days=2) + timedelta(seconds=number * BATCH)
    return [
        {
            "name": f"metric{i % 5}",
            "value": (i % 1000) / 1000,
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "step": number * BATCH + i,
            "source": "canary" if i % 2 else "eval",
        }
        for i in range(BATCH)
    ]


def populate_summary(version: ModelVersion, points: int) -> None:
    if MetricPoint.objects.filter(version=version).count() == points:
        return
    MetricPoint.objects.filter(version=version).delete()
    MetricRollup.objects.filter(version=version).delete()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    every = timedelta(days=30) / points * 20  # each (name, source) series spans ~30 days
    for first in range(0, points, 50_000):
        with transaction.atomic():
            # The service's own write (points and rollups), without checking generated values again.
            metric_history._write(
                version.pk,
                [
                    metric_history.CleanPoint(
                        f"metric{i % 10}",
                        (i % 997) / 997,
                        start + every * (i // 20),
                        None,
                        "canary" if (i // 10) % 2 else "eval",
                    )
                    for i in range(first, min(points, first + 50_000))
                ],
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE metric_points")
            cursor.execute("VACUUM ANALYZE metric_rollups")


def timed(function, runs: int) -> dict:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 1), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10, help="batches of 10,000 points per ingest path")
    parser.add_argument("--summary-points", type=int, default=1_000_000, help="0 to skip the summary")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    model = RegisteredModel.objects.get_or_create(name=MODEL, defaults={"model_type": "classification"})[0]
    ingest = version_named(model, "ingest")
    MetricPoint.objects.filter(version=ingest).delete()
    MetricRollup.objects.filter(version=ingest).delete()
    client = Client(HTTP_HOST="localhost")
    url = f"/models/{MODEL}/versions/{ingest.version}/metrics"
    bodies = [batch(n) for n in range(args.batches)]

    def report(path: str, seconds: float) -> None:
        points = args.batches * BATCH
        print(
            json.dumps(
                {
                    "database": connection.vendor,
                    "case": f"ingest, {path}",
                    "points": points,
                    "seconds": round(seconds, 2),
                    "points_per_s": round(points / seconds),
                    "load": os.getloadavg()[0],
                }
            )
        )

    started = time.perf_counter()
    for body in bodies:
        metric_history.record_points(version=ingest, points=body)
    report("service", time.perf_counter() - started)

    encoded = [json.dumps({"points": body}) for body in bodies]
    started = time.perf_counter()
    for body in encoded:
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 201, response.content[:300]
    report("api (in-process)", time.perf_counter() - started)
    assert MetricPoint.objects.filter(version=ingest).count() == 2 * args.batches * BATCH

    if args.summary_points:
        summary = version_named(model, "summary")
        populate_summary(summary, args.summary_points)
        base = f"/models/{MODEL}/versions/{summary.version}/metrics/summary"
        queries = (
            "?bucket=1d&agg=avg",
            "?bucket=1d&agg=last",
            "?bucket=1h&agg=max&name=metric3",
            "?bucket=1d&agg=avg&since=2026-01-03T10:20:00Z&until=2026-01-25T17:45:00Z",
        )
        for query in queries:

            def get(query=query):
                response = client.get(base + query)
                assert response.status_code == 200, response.content[:300]

            result = {"database": connection.vendor, "case": f"summary {query}", "points": args.summary_points}
            print(json.dumps({**result, **timed(get, args.runs), "load": os.getloadavg()[0]}))
        if connection.vendor == "postgresql":
            with CaptureQueriesContext(connection) as queries:
                rows = metric_history.summarize(version=summary, bucket="1d", agg="avg")
            (sql,) = [q["sql"] for q in queries.captured_queries if "metric_rollups" in q["sql"]]
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN ANALYZE " + sql)
                print(json.dumps({"buckets": len(rows), "plan": [row[0] for row in cursor.fetchall()]}))


if __name__ == "__main__":
    main()
