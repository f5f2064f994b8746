"""manage.py metrics: a version's metric history from the shell, through models_app.metric_history, the
module the API's /metrics routes use: the same checks (all or nothing), the same rollups and audit."""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from django.core.management import call_command

from models_app.models import MetricPoint, MetricRollup
from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    out = StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("metrics", *args, stdout=out)
    return out.getvalue()


def test_record_one_point_then_list_and_summarize_as_the_api_does(world, api):
    out = run(
        "record",
        "resnet",
        "v2",
        "--name",
        "latency_ms",
        "--value",
        "12.5",
        "--source",
        "canary",
        "--timestamp",
        "2026-11-01T10:15:00Z",
        "--step",
        "3",
    )
    assert out == "Recorded 1 point for resnet:v2.\n"
    point = MetricPoint.objects.get(version=world.v2, name="latency_ms")
    assert (point.value, point.source, point.step, point.timestamp.isoformat()) == (
        12.5,
        "canary",
        3,
        "2026-11-01T10:15:00+00:00",
    )
    rollup = MetricRollup.objects.get(version=world.v2, name="latency_ms")
    assert (rollup.count, rollup.total) == (1, 12.5)
    event = AuditEvent.objects.get(action="record_metrics")
    assert event.via == "command" and event.changes["points"] == 1

    run(
        "record",
        "resnet",
        "--version",
        "v2",
        "--name",
        "latency_ms",
        "--value",
        "7.5",
        "--source",
        "canary",
        "--timestamp",
        "2026-11-01T11:00:00Z",
    )
    listed = run("list", "resnet", "v2", "--name", "latency_ms").splitlines()
    assert listed == [
        "2026-11-01T11:00:00+00:00\tlatency_ms\tcanary\t7.5\t",
        "2026-11-01T10:15:00+00:00\tlatency_ms\tcanary\t12.5\t3",
    ]
    assert run("list", "resnet", "v2", "--name", "latency_ms", "--limit", "1").count("\n") == 1
    as_json = json.loads(run("list", "resnet", "v2", "--source", "canary", "--json"))
    assert as_json == api.get("/models/resnet/versions/v2/metrics?source=canary").json()["results"]

    summary = json.loads(run("summary", "resnet", "v2", "--name", "latency_ms", "--bucket", "1d", "--json"))
    assert summary == api.get("/models/resnet/versions/v2/metrics/summary?name=latency_ms&bucket=1d").json()
    assert summary["series"][0]["buckets"][0]["value"] == 10.0
    lines = run("summary", "resnet", "v2", "--name", "latency_ms", "--bucket", "1h", "--agg", "max").splitlines()
    assert lines == [
        "2026-11-01T10:00:00+00:00\tlatency_ms\tcanary\tmax=12.5\tcount=1",
        "2026-11-01T11:00:00+00:00\tlatency_ms\tcanary\tmax=7.5\tcount=1",
    ]


def test_a_batch_from_a_file_or_stdin(world, tmp_path, monkeypatch):
    batch = tmp_path / "points.json"
    batch.write_text(json.dumps({"points": [{"name": "loss", "value": 0.5 - i / 100, "step": i} for i in range(50)]}))
    assert run("record", "resnet", "v1", "--file", str(batch)) == "Recorded 50 points for resnet:v1.\n"
    stdin = json.dumps([{"name": "loss", "value": 0.2, "step": 50}])
    assert run("record", "resnet", "v1", "--file", "-", stdin=stdin, monkeypatch=monkeypatch).startswith("Recorded 1 ")
    assert MetricPoint.objects.filter(version=world.v1, name="loss").count() == 51
    assert MetricRollup.objects.get(version=world.v1, name="loss").count == 51


def test_a_batch_with_one_bad_point_records_nothing(world, tmp_path):
    batch = tmp_path / "points.json"
    batch.write_text(json.dumps([{"name": "loss", "value": 0.5}, {"name": "loss", "value": "high"}]))
    assert_argument_error("metrics", ["record", "resnet", "v1", "--file", str(batch)], r"points\[1\]\.value")
    over = tmp_path / "over.json"
    over.write_text(json.dumps([{"name": "loss", "value": 0.5}] * 10_001))
    assert_argument_error("metrics", ["record", "resnet", "v1", "--file", str(over)], "at most 10000 points")
    assert not MetricPoint.objects.filter(name="loss").exists()
    assert not AuditEvent.objects.filter(action="record_metrics").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["record", "resnet", "v1", "--name", "accuracy", "--value", "nan"], "value: The value must be a finite"),
        (["record", "resnet", "v1", "--name", "accuracy", "--value", "1e400"], "value: The value must be a finite"),
        (["record", "resnet", "v1", "--name", "bad name", "--value", "1"], "name: Not a valid metric name"),
        (
            ["record", "resnet", "v1", "--name", "loss", "--value", "1", "--timestamp", "2999-01-01T00:00:00Z"],
            "timestamp: More than 5 minutes in the future",
        ),
        (["record", "resnet", "v1", "--name", "loss"], "Give --name and --value"),
        (["record", "resnet", "v1", "--file", "/nonexistent.json"], "--file: cannot read"),
        (["record", "resnet", "v9", "--name", "loss", "--value", "1"], "v9"),
        (["record", "resnet", "--name", "loss", "--value", "1"], "Give the version"),
        (["list", "resnet", "v1", "--since", "yesterday"], "--since"),
        (["list", "resnet", "v1", "--value", "1"], "takes no --file, --value"),
        (["summary", "resnet", "v1", "--bucket", "1w"], "--bucket"),
        (["summary", "resnet", "v1", "--agg", "median"], "--agg"),
        (["list", "resnet", "v1", "--agg", "max"], "summary's"),
    ],
)
def test_refusals_name_the_field_and_record_nothing(world, args, match):
    before = MetricPoint.objects.count()
    assert_argument_error("metrics", args, match)
    assert MetricPoint.objects.count() == before
