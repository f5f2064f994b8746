"""A version's metric history (issue #9, section 2): POST/GET /models/{m}/versions/{v}/metrics and its
summary, the points a registration or a metric's change records, and the retention's service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from models_app import metric_history, services
from models_app.models import MetricPoint
from registry_site.models import AuditEvent
from tests.conftest import registry_state, token_client, user_with_role

pytestmark = pytest.mark.django_db


def url(version, suffix: str = "") -> str:
    return f"/models/{version.model.name}/versions/{version.version}/metrics{suffix}"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def points(version, **filters) -> list[tuple]:
    return list(
        MetricPoint.objects.filter(version=version, **filters)
        .order_by("timestamp", "id")
        .values_list("name", "value", "source", "step")
    )


@pytest.fixture
def version(make_version):
    return make_version(data=None)


# --- Recording ------------------------------------------------------------------------------------------
def test_one_point_defaults_to_now_and_eval(api, version):
    before = timezone.now()
    response = api.post(url(version), {"name": "auc", "value": 0.91}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"recorded": 1}
    point = MetricPoint.objects.get(version=version)
    assert (point.name, point.value, point.source, point.step) == ("auc", 0.91, "eval", None)
    assert before <= point.timestamp <= timezone.now()


@pytest.mark.parametrize("wrap", [lambda items: items, lambda items: {"points": items}])
def test_a_batch_as_a_list_or_under_points(api, version, wrap):
    items = [
        {"name": "loss", "value": 1.5 - i / 10, "step": i, "timestamp": f"2026-01-01T00:0{i}:00Z", "source": "train"}
        for i in range(5)
    ]
    response = api.post(url(version), wrap(items), format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"recorded": 5}
    assert points(version) == [("loss", 1.5 - i / 10, "train", i) for i in range(5)]
    # One audit event for the batch, not one per point.
    event = AuditEvent.objects.filter(action="record_metrics").get()
    assert event.changes == {"points": 5, "names": ["loss"], "sources": ["train"]}


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"name": "bad__name", "value": 1}, "name"),
        ({"name": "9lives", "value": 1}, "name"),
        ({"value": 1}, "name"),
        ({"name": "auc"}, "value"),
        ({"name": "auc", "value": "0.9"}, "value"),
        ({"name": "auc", "value": True}, "value"),
        ({"name": "auc", "value": 1, "timestamp": "yesterday"}, "timestamp"),
        ({"name": "auc", "value": 1, "step": -1}, "step"),
        ({"name": "auc", "value": 1, "step": 1.5}, "step"),
        ({"name": "auc", "value": 1, "source": "no spaces"}, "source"),
        ({"name": "auc", "value": 1, "source": "x" * 33}, "source"),
        ({"name": "auc", "value": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(api, version, storage_dir, point, field):
    before = registry_state(storage_dir)
    single = api.post(url(version), point, format="json")
    assert single.status_code == 400, single.json()
    assert field in single.json()["errors"], single.json()
    batch = api.post(url(version), [{"name": "ok", "value": 1}, point], format="json")
    assert batch.status_code == 400
    assert f"points[1].{field}" in batch.json()["errors"], batch.json()
    assert MetricPoint.objects.count() == 0
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused(api, version, raw):
    body = '{"points": [{"name": "a", "value": 1}, {"name": "a", "value": %s}]}' % raw
    response = api.post(url(version), body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert MetricPoint.objects.count() == 0


def test_a_future_timestamp_is_refused_with_the_points_index(api, version):
    soon = timezone.now() + timedelta(minutes=2)
    later = timezone.now() + timedelta(minutes=10)
    ok = api.post(url(version), {"name": "a", "value": 1, "timestamp": iso(soon)}, format="json")
    assert ok.status_code == 201  # a clock a little ahead is tolerated
    items = [{"name": "a", "value": 2}, {"name": "a", "value": 3, "timestamp": iso(later)}]
    response = api.post(url(version), items, format="json")
    assert response.status_code == 400
    assert "future" in response.json()["errors"]["points[1].timestamp"][0]
    assert MetricPoint.objects.count() == 1


def test_over_ten_thousand_points_is_a_413_naming_points(api, version):
    items = [{"name": "a", "value": 1}] * (metric_history.MAX_POINTS_PER_REQUEST + 1)
    response = api.post(url(version), {"points": items}, format="json")
    assert response.status_code == 413
    assert "points" in response.json()["errors"]
    assert MetricPoint.objects.count() == 0
    exactly = api.post(url(version), {"points": items[:-1]}, format="json")
    assert exactly.status_code == 201
    assert MetricPoint.objects.count() == metric_history.MAX_POINTS_PER_REQUEST


@pytest.mark.parametrize("body", [[], {"points": []}, {"points": {}}, "text", {"points": [], "extra": 1}])
def test_empty_or_malformed_batches_are_refused(api, version, body):
    response = api.post(url(version), body, format="json")
    assert response.status_code == 400, response.json()
    assert MetricPoint.objects.count() == 0


def test_unknown_model_or_version_is_a_404(api, version):
    assert (
        api.post(
            f"/models/{version.model.name}/versions/nope/metrics", {"name": "a", "value": 1}, format="json"
        ).status_code
        == 404
    )
    assert api.get("/models/nope/versions/v1/metrics").status_code == 404


def test_the_database_refuses_what_the_service_refuses(version):
    now = timezone.now()
    for bad in ({"step": -1}, {"source": "bad source"}, {"name": "a__b"}, {"value": float("inf")}):
        fields = {"version": version, "name": "a", "value": 1.0, "timestamp": now, **bad}
        with pytest.raises(IntegrityError), transaction.atomic():
            MetricPoint.objects.create(**fields)


def test_the_idempotency_key_replays_a_batch(api, version):
    body = [{"name": "a", "value": 1}, {"name": "b", "value": 2}]
    first = api.post(url(version), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(url(version), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert MetricPoint.objects.count() == 2


# --- Who may ---------------------------------------------------------------------------------------------
def test_recording_needs_write_access_and_reading_the_read_rule(version, production):
    anonymous = APIClient()
    assert anonymous.post(url(version), {"name": "a", "value": 1}, format="json").status_code in (401, 403)
    viewer = token_client(user_with_role("viewer", "viewer"))
    assert viewer.post(url(version), {"name": "a", "value": 1}, format="json").status_code == 403
    assert viewer.get(url(version)).status_code == 200
    assert viewer.get(url(version, "/summary?bucket=1d&agg=avg")).status_code == 200
    editor = token_client(user_with_role("editor", "editor"))
    assert editor.post(url(version), {"name": "a", "value": 1}, format="json").status_code == 201
    assert MetricPoint.objects.count() == 1


# --- Listing --------------------------------------------------------------------------------------------
@pytest.fixture
def history(api, version):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    items = [
        {
            "name": name,
            "value": float(i),
            "source": source,
            "timestamp": iso(start + timedelta(hours=6 * i)),
        }
        for i in range(8)  # two days, four points a day, six hours apart
        for name, source in (("auc", "eval"), ("auc", "canary"), ("loss", "eval"))
    ]
    assert api.post(url(version), items, format="json").status_code == 201
    return version


def test_list_newest_first_with_filters(api, history):
    body = api.get(url(history, "?name=auc&source=canary")).json()
    assert [p["value"] for p in body["results"]] == [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert {(p["name"], p["source"]) for p in body["results"]} == {("auc", "canary")}
    window = api.get(url(history, "?name=loss&since=2026-03-01T12:00:00Z&until=2026-03-02T06:00:00Z")).json()
    assert [p["value"] for p in window["results"]] == [4.0, 3.0, 2.0]
    assert window["results"][0] == {
        "name": "loss",
        "value": 4.0,
        "timestamp": "2026-03-02T00:00:00Z",
        "step": None,
        "source": "eval",
    }


def test_list_follows_the_cursor_to_the_end(api, history):
    seen = []
    link = url(history, "?page_size=5")
    while link:
        body = api.get(link).json()
        seen += [(p["name"], p["source"], p["value"]) for p in body["results"]]
        link = body["next"]
    assert len(seen) == 24 and len(set(seen)) == 24


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?colour=red", "colour"),
        ("?name=a__b", "name"),
        ("?since=yesterday", "since"),
        ("?source=", "source"),
        ("?name=a&name=b", "name"),
    ],
)
def test_list_refuses_bad_or_unknown_parameters(api, history, query, field):
    response = api.get(url(history, query))
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


# --- Summary --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agg", "day_one", "day_two"),
    [("avg", 1.5, 5.5), ("min", 0.0, 4.0), ("max", 3.0, 7.0), ("last", 3.0, 7.0), ("count", 4.0, 4.0)],
)
def test_summary_by_day(api, history, agg, day_one, day_two):
    response = api.get(url(history, f"/summary?bucket=1d&agg={agg}&name=auc"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["bucket"], body["agg"]) == ("1d", agg)
    assert [(s["name"], s["source"]) for s in body["series"]] == [("auc", "canary"), ("auc", "eval")]
    for series in body["series"]:
        assert series["buckets"] == [
            {"start": "2026-03-01T00:00:00Z", "value": day_one, "count": 4},
            {"start": "2026-03-02T00:00:00Z", "value": day_two, "count": 4},
        ]


def test_summary_by_hour_and_window(api, history):
    body = api.get(url(history, "/summary?bucket=1h&agg=max&source=eval&name=loss&since=2026-03-02T00:00:00Z")).json()
    (series,) = body["series"]
    assert [(b["start"], b["value"]) for b in series["buckets"]] == [
        ("2026-03-02T00:00:00Z", 4.0),
        ("2026-03-02T06:00:00Z", 5.0),
        ("2026-03-02T12:00:00Z", 6.0),
        ("2026-03-02T18:00:00Z", 7.0),
    ]


def test_summary_defaults_to_daily_averages(api, history):
    body = api.get(url(history, "/summary?name=loss")).json()
    assert (body["bucket"], body["agg"]) == ("1d", "avg")
    assert [b["value"] for b in body["series"][0]["buckets"]] == [1.5, 5.5]


def test_last_is_the_latest_point_not_the_largest(api, version):
    items = [
        {"name": "a", "value": 9.0, "timestamp": "2026-03-01T01:00:00Z"},
        {"name": "a", "value": 2.0, "timestamp": "2026-03-01T05:00:00Z"},
        {"name": "a", "value": 5.0, "timestamp": "2026-03-01T03:00:00Z"},
    ]
    api.post(url(version), items, format="json")
    (series,) = api.get(url(version, "/summary?bucket=1d&agg=last")).json()["series"]
    assert series["buckets"] == [{"start": "2026-03-01T00:00:00Z", "value": 2.0, "count": 3}]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?bucket=1w&agg=avg", "bucket"),
        ("?bucket=1d&agg=p99", "agg"),
        ("?bucket=1d&agg=avg&x=1", "x"),
    ],
)
def test_summary_refuses_bad_parameters(api, history, query, field):
    response = api.get(url(history, "/summary" + query))
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


# --- Registration points --------------------------------------------------------------------------------
def test_registration_and_each_change_record_points(api, make_model):
    model = make_model()
    body = {"version": "v1", "format": "onnx", "accuracy": 0.9, "metrics": {"auc": 0.8}}
    assert api.post(f"/models/{model.name}/versions", body, format="json").status_code == 201
    version = model.versions.get()
    assert sorted(points(version, source="registration")) == [
        ("accuracy", 0.9, "registration", None),
        ("auc", 0.8, "registration", None),
    ]

    change = {"accuracy": 0.95, "metrics": {"auc": 0.8, "loss": 0.2}}  # auc unchanged: no point for it
    assert api.patch(f"/models/{model.name}/versions/v1", change, format="json").status_code == 200
    assert sorted(points(version)) == [
        ("accuracy", 0.9, "registration", None),
        ("accuracy", 0.95, "registration", None),
        ("auc", 0.8, "registration", None),
        ("loss", 0.2, "registration", None),
    ]
    # The same change again changes nothing and records nothing; removing a metric records nothing.
    api.patch(f"/models/{model.name}/versions/v1", change, format="json")
    services.update_version(version=version, changes={"metrics": {"loss": None}})
    assert MetricPoint.objects.count() == 4


def test_the_register_version_command_records_points_too(make_model, tmp_path):
    model = make_model()
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"w")
    call_command("register_version", model.name, "v1", "--format", "onnx", "--file", str(weights), "--accuracy", "0.7")
    assert points(model.versions.get()) == [("accuracy", 0.7, "registration", None)]


# --- Retention ------------------------------------------------------------------------------------------
def test_prune_deletes_old_points_and_can_keep_daily_averages(version):
    now = timezone.now()
    old_day = (now - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(version=version, name="a", value=v, timestamp=old_day + timedelta(hours=v), source="eval")
            for v in (1.0, 2.0, 6.0)
        ]
        + [MetricPoint(version=version, name="a", value=10.0, timestamp=now - timedelta(days=1), source="eval")]
    )
    report = metric_history.prune_points(older_than=timedelta(days=90), keep_daily=True)
    assert (report.deleted, report.kept_daily) == (3, 1)
    assert points(version) == [("a", 3.0, "eval.daily", 3), ("a", 10.0, "eval", None)]
    # A later prune keeps daily points with --keep-daily, and deletes them without.
    assert metric_history.prune_points(older_than=timedelta(days=90), keep_daily=True).deleted == 0
    assert metric_history.prune_points(older_than=timedelta(days=90)).deleted == 1
    assert points(version) == [("a", 10.0, "eval", None)]
    assert AuditEvent.objects.filter(action="prune_metrics").count() == 3


def test_deleting_a_version_deletes_its_points(api, version):
    api.post(url(version), {"name": "a", "value": 1}, format="json")
    services.delete_version(version=version)
    assert MetricPoint.objects.count() == 0


# --- Admin ----------------------------------------------------------------------------------------------
def test_the_version_page_shows_the_history_per_name_and_source(admin_client, api, history):
    page = admin_client.get(f"/admin/models_app/modelversion/{history.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Metric history" in html
    # auc/canary, auc/eval, loss/eval: 8 points each; the latest 10 are listed (nothing counts them all),
    # newest first, and each metric is charted, a line per source (tests/test_admin_charts.py).
    rows = [row for row in html.split("<tr>") if "<td>auc</td>" in row or "<td>loss</td>" in row]
    assert len(rows) == 10
    assert all("<td>7</td>" in row for row in rows[:3]) and "<td>4</td>" in rows[-1]
    assert 'aria-label="auc of ' in html and 'aria-label="loss of ' in html
