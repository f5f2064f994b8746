#!/usr/bin/env python3
"""Metric ingest with alert rules (issue #9 §4): batches of 10,000 points through the HTTP API (Django's
test client: the whole middleware stack, no socket) and through the service, with no alert rule on the
model and with 10 enabled rules on the metrics the batches hold. The goal: with the rules, ingest keeps
at least 80% of the rate without them.

In-process, against the database of DATABASE_URL (migrated; default SQLite ./data). It makes (once) a
model `bench-alert-ingest` with a default version `baseline` and a version `ingest` active on `staging`,
and 10 rules: every aggregate, windows of points and of minutes, above/below/drop/no-data conditions,
with and without a target and a source. Rules are switched off and on between runs (one UPDATE), and
the runs alternate (ABBA), so both conditions see the same table sizes and the same machine load. Prints one
JSON line per condition and path, and the ratio. --interval 0 evaluates every rule on every batch (the
worst case: each time window's aggregate reads all of its points each time).

    .venv/bin/python bench/alert_ingest.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/alert_ingest.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from deployments_app import alerts  # noqa: E402
from deployments_app.models import AlertRule  # noqa: E402
from deployments_app.services import deploy_version  # noqa: E402
from models_app import metric_history  # noqa: E402
from models_app.models import MetricPoint, MetricRollup, ModelVersion, RegisteredModel  # noqa: E402
from registry_site.permissions import Operator  # noqa: E402

MODEL = "bench-alert-ingest"
BATCH = metric_history.MAX_POINTS_PER_REQUEST
NAMES = [f"metric{i}" for i in range(5)]
RULES = [
    {"metric": "metric0", "aggregate": "avg", "window_minutes": 30, "condition": "below", "threshold": -1.0},
    {"metric": "metric0", "aggregate": "max", "window_points": 1000, "condition": "above", "threshold": 2.0},
    {"metric": "metric1", "aggregate": "last", "window_points": 100, "condition": "above", "threshold": 2.0},
    {"metric": "metric1", "aggregate": "count", "window_minutes": 60, "condition": "below", "threshold": 1.0},
    {"metric": "metric2", "aggregate": "min", "window_minutes": 15, "condition": "below", "threshold": -1.0},
    {"metric": "metric2", "source": "canary", "window_points": 500, "condition": "below", "threshold": -1.0},
    {"metric": "metric3", "window_minutes": 30, "condition": "drop", "baseline": "default", "drop_by": 5.0},
    {"metric": "metric3", "window_minutes": 30, "condition": "drop", "baseline": "previous", "drop_by": 5.0},
    {"metric": "metric4", "window_minutes": 10, "condition": "no_data"},
    {"metric": "metric4", "source": "eval", "window_points": 50, "condition": "above", "threshold": 2.0},
]


def setup(client: Client) -> tuple[RegisteredModel, ModelVersion]:
    model = RegisteredModel.objects.filter(name=MODEL).first()
    if model is None:
        assert (
            client.post("/models", {"name": MODEL, "model_type": "classification"}, "application/json").status_code
            == 201
        )
        for version in ("baseline", "ingest"):
            form = {"version": version, "format": "onnx", "file": SimpleUploadedFile("m.onnx", version.encode())}
            assert client.post(f"/models/{MODEL}/versions", form).status_code == 201
        model = RegisteredModel.objects.get(name=MODEL)
        baseline = ModelVersion.objects.get(model=model, version="baseline")
        metric_history.record_points(version=baseline, points=[{"name": n, "value": 0.5} for n in NAMES])
        deploy_version(version=baseline, target="staging", acting_user=Operator())
        deploy_version(
            version=ModelVersion.objects.get(model=model, version="ingest"), target="staging", acting_user=Operator()
        )
    if not AlertRule.objects.filter(model=model).exists():
        for number, values in enumerate(RULES):
            target = {"target": "staging"} if number % 2 else {}
            alerts.create_rule(
                model=model, values={"name": f"rule {number}", **values, **target}, acting_user=Operator()
            )
    return model, ModelVersion.objects.get(model=model, version="ingest")


def batch() -> list[dict]:
    """10,000 points of the last ~17 minutes: inside the rules' time windows, as live traffic is."""
    start = timezone.now() - timedelta(seconds=BATCH // 10)
    return [
        {
            "name": NAMES[i % 5],
            "value": (i % 1000) / 1000,
            "timestamp": (start + timedelta(milliseconds=100 * i)).isoformat(),
            "source": "canary" if i % 2 else "eval",
        }
        for i in range(BATCH)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=5, help="batches of 10,000 points per run")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each condition, alternating (even)")
    parser.add_argument(
        "--interval",
        type=int,
        default=settings.REGISTRY_ALERT_EVALUATION_SECONDS,
        help="REGISTRY_ALERT_EVALUATION_SECONDS for the run (0: every batch evaluates every rule)",
    )
    args = parser.parse_args()
    settings.REGISTRY_ALERT_EVALUATION_SECONDS = args.interval
    call_command("migrate", verbosity=0)
    client = Client(HTTP_HOST="localhost")
    model, version = setup(client)
    MetricPoint.objects.filter(version=version).delete()
    MetricRollup.objects.filter(version=version).delete()  # the points' hourly rollups go with them
    url = f"/models/{MODEL}/versions/{version.version}/metrics"
    rules = AlertRule.objects.filter(model=model)
    seconds: dict[tuple[str, int], float] = {}
    for round_ in range(args.rounds):
        # ABBA: each condition goes first as often as second, so neither always meets the smaller table.
        for count in (0, len(RULES)) if round_ % 2 == 0 else (len(RULES), 0):
            rules.update(enabled=bool(count))
            bodies = [batch() for _ in range(args.batches)]
            encoded = [json.dumps({"points": body}) for body in bodies]
            started = time.perf_counter()
            for body in encoded:
                response = client.post(url, body, content_type="application/json")
                assert response.status_code == 201, response.content[:300]
            seconds[("api", count)] = seconds.get(("api", count), 0) + time.perf_counter() - started
            started = time.perf_counter()
            for body in bodies:
                metric_history.record_points(version=version, points=body)
            seconds[("service", count)] = seconds.get(("service", count), 0) + time.perf_counter() - started
    points = args.rounds * args.batches * BATCH
    for path in ("api", "service"):
        rates = {count: points / seconds[(path, count)] for count in (0, len(RULES))}
        for count, rate in rates.items():
            print(
                json.dumps(
                    {
                        "database": connection.vendor,
                        "case": f"ingest, {path}, {count} rules, evaluation every {args.interval} s",
                        "points": points,
                        "points_per_s": round(rate),
                        "load": os.getloadavg()[0],
                    }
                )
            )
        print(
            json.dumps(
                {
                    "database": connection.vendor,
                    "case": f"{path}: with rules / without",
                    "ratio": round(rates[len(RULES)] / rates[0], 3),
                }
            )
        )
    alerts_fired = alerts.alerts().filter(rule__model=model).count()
    print(json.dumps({"alerts": alerts_fired, "note": "rules that fired during the runs (each once at most)"}))


if __name__ == "__main__":
    main()
