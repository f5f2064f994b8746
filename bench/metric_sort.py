#!/usr/bin/env python3
"""How long a sorted page of a big model's versions takes (issue #9: under 50 ms on PostgreSQL for a
100,000-version model): `GET /models/{m}/versions?ordering=-metric.auc`, its next pages, the ascending
order, a page deep into the versions that lack the metric, and filters by metric and tag.

In-process: each request goes through Django's test client (the whole middleware stack, the view, the
filters, the keyset pagination and the serializer; no socket), against the database of DATABASE_URL,
which it migrates. It makes (once; kept for later runs) a model `bench-metric-sort` with --versions
versions, 90% of them with an `auc` (rounded to 3 decimals, so there are ties), every one with a tag
`team` of 10 values. Prints one JSON line per request kind: median and p90 in ms over --runs requests,
and the plan PostgreSQL chose for the first page's main query.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/metric_sort.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from models_app.filters import keyset_order  # noqa: E402
from models_app.models import ModelVersion, RegisteredModel, VersionMetric, VersionTag  # noqa: E402

MODEL = "bench-metric-sort"
BATCH = 5000


def populate(versions: int) -> RegisteredModel:
    model = RegisteredModel.objects.filter(name=MODEL).first()
    if model is not None and ModelVersion.objects.filter(model=model).count() == versions:
        return model
    if model is not None:
        model.delete()
    rng = random.Random(9)
    model = RegisteredModel.objects.create(name=MODEL, model_type="classification")
    for start in range(0, versions, BATCH):
        with transaction.atomic():
            rows = ModelVersion.objects.bulk_create(
                ModelVersion(model=model, version=f"1.{i}", format="onnx")
                for i in range(start, min(versions, start + BATCH))
            )
            VersionMetric.objects.bulk_create(
                VersionMetric(version=row, model=model, name="auc", value=round(rng.random(), 3))
                for row in rows
                if rng.random() < 0.9
            )
            VersionTag.objects.bulk_create(
                VersionTag(version=row, model=model, key="team", value=f"team{rng.randrange(10)}") for row in rows
            )
        print(f"made {min(versions, start + BATCH)} versions", file=sys.stderr)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return model


def timed(client: Client, url: str, runs: int) -> dict:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:500]
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[int(len(times) * 0.9) - 1], 1),
        "rows": len(response.json()["results"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    model = populate(args.versions)
    client = Client(HTTP_HOST="localhost")
    base = f"/models/{MODEL}/versions"

    first = client.get(base + "?ordering=-metric.auc").json()
    # A cursor deep in the versions that lack the metric: walk there with big pages once.
    deep = base + "?ordering=-metric.auc&page_size=500"
    while True:
        page = client.get(deep).json()
        if not page["next"] or page["results"][-1]["metrics"] == {}:
            break
        deep = page["next"]
    cases = {
        "first page, -metric.auc (50 rows)": base + "?ordering=-metric.auc",
        "second page, -metric.auc": first["next"],
        "first page, metric.auc": base + "?ordering=metric.auc",
        "a page among the versions without auc": deep.replace("page_size=500", "page_size=50"),
        "first page, -created_at": base + "?ordering=-created_at",
        "first page, newest first (no ordering)": base,
        "metric.auc__gte=0.9, -metric.auc": base + "?metric.auc__gte=0.9&ordering=-metric.auc",
        "tag.team=team3, newest first": base + "?tag.team=team3",
    }
    for name, url in cases.items():
        result = {
            "database": connection.vendor,
            "versions": args.versions,
            "case": name,
            **timed(client, url, args.runs),
        }
        print(json.dumps(result))
    if connection.vendor == "postgresql":
        order = keyset_order("-metric.auc", ModelVersion.objects.filter(model=model), model)
        query = order.segments[0].ordered()[:51]
        with connection.cursor() as cursor:
            sql, params = query.query.sql_with_params()
            cursor.execute("EXPLAIN ANALYZE " + sql, params)
            print(json.dumps({"plan": [row[0] for row in cursor.fetchall()]}))


if __name__ == "__main__":
    main()
