#!/usr/bin/env python3
"""The console's charts at scale (issue #9 §5): a version's admin page with 1,000,000 metric points
(10 names x 2 sources over ~30 days, bench/metric_ingest.py's `summary` version, made once and kept), its
charts averaged per day in the database; timed whole (the page through Django's test client, logged in,
no socket) and the charts' read alone (models_app.metric_charts.history_lines). Prints one JSON line per
measurement, with the page's size and the number of points drawn.

    .venv/bin/python bench/admin_charts.py                      # SQLite (./data)
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/admin_charts.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from metric_ingest import MODEL, populate_summary, timed, version_named  # noqa: E402  (sets Django up)

from models_app import metric_charts  # noqa: E402
from models_app.models import RegisteredModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    model, _ = RegisteredModel.objects.get_or_create(name=MODEL, defaults={"model_type": "classification"})
    version = version_named(model, "summary")
    populate_summary(version, args.points)
    user = get_user_model().objects.filter(username="bench-admin").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    page = f"/admin/models_app/modelversion/{version.pk}/change/"
    size = {}

    def get():
        response = client.get(page)
        assert response.status_code == 200, response.content[:300]
        size["bytes"] = len(response.content)

    lines, note, _ = metric_charts.history_lines(version)
    drawn = sum(len(line.points) for series in lines.values() for line in series)
    base = {"database": connection.vendor, "points": args.points, "load": os.getloadavg()[0]}
    print(
        json.dumps({**base, "case": "history_lines", **timed(lambda: metric_charts.history_lines(version), args.runs)})
    )
    print(json.dumps({**base, "case": "version admin page", **timed(get, args.runs), "page_bytes": size["bytes"]}))
    print(json.dumps({**base, "charts": len(lines), "points_drawn": drawn, "note": note}))


if __name__ == "__main__":
    main()
