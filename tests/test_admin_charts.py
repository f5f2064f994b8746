"""What the console's charts read (models_app.metric_charts, deployments_app.experiment_charts) and the
pages that show them: a few points are drawn as recorded, many are averaged per hour or per day in the
database with a bounded number per line; the version page's table of points counts nothing; a model's
chart follows ?chart_metric=; an experiment's lines are each bucket's rate or mean."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments_app import experiment_charts, experiments
from deployments_app.models import Deployment, ResultBatch
from models_app import metric_charts
from registry_site.permissions import Operator
from tests.test_admin import url

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def bulk_points(
    version, *, count: int, every: timedelta, name: str = "auc", source: str = "eval", value=None, start=T0
):
    """Points through the history's one writer (metric_history._write), so their rollups are written too."""
    from models_app.metric_history import CleanPoint, _write

    points = [
        CleanPoint(name, value(i) if value else 0.5 + (i % 10) / 100, start + every * i, None, source)
        for i in range(count)
    ]
    with transaction.atomic():
        for first in range(0, count, 10_000):
            _write(version.pk, points[first : first + 10_000])


CHART = '<svg xmlns="http://www.w3.org/2000/svg" class="registry-chart'


def svgs(html: str) -> list[ET.Element]:
    """The page's charts (not the admin's icons), parsed."""
    roots = []
    start = html.find(CHART)
    while start != -1:
        end = html.index("</svg>", start) + len("</svg>")
        roots.append(ET.fromstring(html[start:end]))
        start = html.find(CHART, end)
    return roots


def test_a_few_points_are_drawn_as_recorded(make_version):
    version = make_version(data=None, accuracy="0.9")
    bulk_points(version, count=30, every=timedelta(minutes=1))
    lines, note, since = metric_charts.history_lines(version)
    assert note == "Every point, as recorded." and since is None
    assert {name: [(s.label, len(s.points)) for s in series] for name, series in lines.items()} == {
        "accuracy": [("registration", 1)],
        "auc": [("eval", 30)],
    }


def test_many_points_are_averaged_per_hour_in_the_database(make_version):
    version = make_version(data=None)
    # 3,000 points a minute apart: 50 hours, 60 points an hour, 0.5 in even hours and 0.7 in odd ones.
    bulk_points(version, count=3_000, every=timedelta(minutes=1), value=lambda i: 0.5 + 0.2 * ((i // 60) % 2))
    lines, note, since = metric_charts.history_lines(version)
    (line,) = lines["auc"]
    assert note == "Averages per hour (UTC)." and since is None
    assert len(line.points) == 50 and line.notes[0] == "average of 60 points"
    assert [round(v, 9) for _, v in line.points[:3]] == [0.5, 0.7, 0.5]
    assert line.points[1][0] == T0 + timedelta(hours=1)


def test_years_of_points_are_daily_and_bounded(make_version):
    version = make_version(data=None)
    bulk_points(version, count=2_500, every=timedelta(hours=6))  # 625 days
    bulk_points(version, count=10, every=timedelta(days=60), source="production")
    lines, note, since = metric_charts.history_lines(version)
    assert note.startswith("Averages per day (UTC) since ") and since is not None
    assert all(len(line.points) <= metric_charts.LINE_POINTS + 1 for line in lines["auc"])
    assert [line.label for line in lines["auc"]] == ["eval", "production"]
    assert all(moment >= since - timedelta(days=1) for line in lines["auc"] for moment, _ in line.points)


def test_a_long_history_is_summarized_from_the_rollups_exactly(make_version):
    """Averages per hour from the rollups equal the points' own averages, the part-hour at the start
    included."""
    version = make_version(data=None)
    bulk_points(version, count=5_000, every=timedelta(minutes=1), start=T0 + timedelta(minutes=17),
                value=lambda i: (i * 7919) % 1000 / 1000)  # fmt: skip
    lines, note, since = metric_charts.history_lines(version)
    assert note == "Averages per hour (UTC)." and since is None
    (line,) = lines["auc"]
    assert sum(int(n.split()[2]) for n in line.notes) == 5_000  # "average of N points"
    by_hour: dict = {}
    for i in range(5_000):
        moment = T0 + timedelta(minutes=17 + i)
        by_hour.setdefault(moment.replace(minute=0, second=0, microsecond=0), []).append((i * 7919) % 1000 / 1000)
    expected = [(hour, sum(v) / len(v)) for hour, v in sorted(by_hour.items())]
    assert [h for h, _ in line.points] == [h for h, _ in expected]
    assert all(abs(a - b) < 1e-9 for (_, a), (_, b) in zip(line.points, expected, strict=True))


def test_the_version_page_charts_marks_and_lists_without_counting(admin_client, api, make_model, make_version):
    from tests.conftest import deployed

    model = make_model("charted")
    version = make_version(model, "v1", data=b"weights", accuracy="0.9")
    start = timezone.now() - timedelta(days=2)  # the registration's point is now: the chart spans two days
    bulk_points(version, count=2_500, every=timedelta(minutes=1), start=start)
    deployment = Deployment.objects.get(pk=deployed(api, model, "v1", "production")["id"])
    Deployment.objects.filter(pk=deployment.pk).update(deployed_at=start + timedelta(hours=10))
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url("models_app_modelversion_change", version.pk))
    assert page.status_code == 200
    html = page.content.decode()
    charts = svgs(html)
    assert [c.get("aria-label") for c in charts] == ["accuracy of charted:v1", "auc of charted:v1"]
    auc = charts[1]
    assert len([g for g in auc.iter(f"{SVG}g") if g.get("class") == "registry-series"]) == 1
    assert [t.text for t in auc.iter(f"{SVG}text") if t.text == "deployed to production"] == ["deployed to production"]
    assert "Averages per hour (UTC)" in html and "All points (API)" in html
    point_reads = [q["sql"] for q in queries.captured_queries if "metric_points" in q["sql"]]
    assert not [sql for sql in point_reads if "COUNT(" in sql.upper() and "GROUP BY" not in sql.upper()]
    # The head, the latest time, the summary's part-hour, the latest points (the rest reads the rollups).
    assert len(point_reads) <= 5


def test_a_version_without_points_says_so(admin_client, make_version):
    version = make_version(data=None)
    html = admin_client.get(url("models_app_modelversion_change", version.pk)).content.decode()
    assert "no point recorded yet" in html and not svgs(html)


def test_the_model_page_charts_the_chosen_metric_across_versions(admin_client, make_model, make_version):
    model = make_model("across")
    for i in range(1, 4):
        make_version(model, f"v{i}", data=None, metrics=json.dumps({"auc": 0.7 + i / 10, "val_loss": 1 / i}))
    page = url("models_app_registeredmodel_change", model.pk)

    def chart(query: str = "") -> ET.Element:
        html = admin_client.get(page + query).content.decode()
        assert "<script>" not in html
        return next(root for root in svgs(html) if "registry-chart-bars" in root.get("class"))

    default = chart()  # no seed metric has values: the first named one
    assert default.get("aria-label") == "auc across the versions of across"
    bars = [r.find(f"{SVG}title").text for r in default.iter(f"{SVG}rect") if r.get("class") == "registry-bar"]
    assert bars == ["v1: 0.8", "v2: 0.9", "v3: 1"]
    assert chart("?chart_metric=val_loss").get("aria-label") == "val_loss across the versions of across"
    hostile = chart("?chart_metric=%3Cscript%3E")
    assert hostile.get("aria-label") == "auc across the versions of across"


def test_the_model_page_without_metrics_says_so(admin_client, make_model, make_version):
    model = make_model("bare")
    make_version(model, "v1", data=None)
    html = admin_client.get(url("models_app_registeredmodel_change", model.pk)).content.decode()
    assert "no version has a metric yet" in html


def _experiment(world, kind: str = "rate"):
    experiment = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="chart test",
        variants=[
            experiments.VariantSpec("v1", 5000, "control", is_control=True),
            experiments.VariantSpec("v2", 5000, "candidate"),
        ],
        acting_user=Operator(),
        metric="latency" if kind == "mean" else "conversion",
        metric_kind=kind,
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    return experiment


def test_an_experiments_lines_per_hour_and_per_day(world):
    experiment = _experiment(world)
    base = datetime(2026, 3, 1, 10, tzinfo=UTC)
    experiments.report_results(
        experiment=experiment,
        batches=[
            {"variant": "control", "exposures": 100, "conversions": 10, "observed_at": base},
            {"variant": "control", "exposures": 300, "conversions": 50, "observed_at": base + timedelta(minutes=40)},
            {"variant": "control", "exposures": 200, "conversions": 20, "observed_at": base + timedelta(hours=5)},
            {"variant": "candidate", "exposures": 400, "conversions": 80, "observed_at": base + timedelta(hours=1)},
        ],
    )
    lines, kind = experiment_charts.variant_lines(experiment)
    assert kind == "hour"
    control, candidate = lines
    assert control.label == "control (control)" and candidate.label == "candidate"
    assert control.points == [(base, 60 / 400), (base + timedelta(hours=5), 0.1)]
    assert control.notes == ["400 exposures", "200 exposures"]
    assert candidate.points == [(base + timedelta(hours=1), 0.2)]
    html = str(experiment_charts.results_chart(experiment))
    root = ET.fromstring(html)
    assert [m.find(f"{SVG}text").text for m in root.iter(f"{SVG}g") if "registry-marker" in (m.get("class") or "")] == [
        "started"
    ]


def test_an_experiments_mean_per_bucket_and_no_results(world, admin_client):
    experiment = _experiment(world, kind="mean")
    page = url("deployments_app_experiment_change", experiment.pk)
    assert "no results reported yet" in admin_client.get(page).content.decode()
    base = datetime(2026, 3, 1, tzinfo=UTC)
    experiments.report_results(
        experiment=experiment,
        batches=[
            {"variant": "control", "count": 4, "sum": 400.0, "sum_sq": 40_400.0, "observed_at": base},
            {"variant": "control", "count": 6, "sum": 660.0, "sum_sq": 73_000.0, "observed_at": base},
            {"variant": "candidate", "count": 5, "sum": 450.0, "sum_sq": 40_600.0, "observed_at": base},
            {"variant": "candidate", "count": 5, "sum": 500.0, "sum_sq": 50_100.0, "observed_at": base + timedelta(10)},
        ],
    )
    assert ResultBatch.objects.count() == 4
    (control, candidate), kind = experiment_charts.variant_lines(experiment)
    assert kind == "day"  # ten days are 240 hours, over LINE_POINTS
    assert control.points == [(base, 106.0)] and control.notes == ["10 observations"]
    assert candidate.points == [(base, 90.0), (base + timedelta(10), 100.0)]
    html = admin_client.get(page).content.decode()
    assert 'id="registry-experiment-chart"' in html and "latency per variant" in html
