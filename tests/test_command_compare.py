"""manage.py compare: versions side by side from the shell, through models_app.comparison, as GET
/models/{m}/compare and GET /compare answer: the same checks and the same JSON with --json."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from models_app import metric_history
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("compare", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def scored(world, api):
    for version, accuracy, loss in (("v1", 0.91, 0.30), ("v2", 0.94, 0.35)):
        response = api.patch(
            f"/models/resnet/versions/{version}", {"accuracy": accuracy, "metrics": {"val_loss": loss}}, format="json"
        )
        assert response.status_code == 200, response.json()
    return world


def test_the_json_is_the_apis(scored, api):
    assert json.loads(run("resnet", "v1", "v2", "--json")) == api.get("/models/resnet/compare?versions=v1,v2").json()
    assert json.loads(run("resnet:default", "resnet:v2", "--json")) == (
        api.get("/compare?versions=resnet:default,resnet:v2").json()
    )


def test_the_table_marks_the_best_value_of_each_metric(scored):
    lines = run("resnet", "v1", "v2", "v3").splitlines()
    assert lines[0] == "Registered metrics, baseline v1"
    accuracy = next(line for line in lines if line.startswith("accuracy"))
    assert accuracy.split() == ["accuracy", "↑", "0.91", "0.94", "*", "-"]
    loss = next(line for line in lines if line.startswith("val_loss"))
    assert loss.split() == ["val_loss", "↓", "0.3", "*", "0.35", "-"]
    assert any(line.startswith("deployed to") and "staging" in line for line in lines)


def test_a_window_compares_the_metric_history(scored):
    for version, value in (("v1", 0.7), ("v2", 0.8)):
        metric_history.record_points(
            version=getattr(scored, version), points=[{"name": "accuracy", "value": value, "source": "production"}]
        )
    body = json.loads(run("resnet", "v1", "v2", "--window", "24h", "--source", "production", "--json"))
    assert body["basis"] == {"kind": "history", "window": "24h", "source": "production", "agg": "avg"}
    row = next(row for row in body["metrics"] if row["name"] == "accuracy")
    assert row["values"] == {"v1": 0.7, "v2": 0.8} and row["best"] == ["v2"]
    assert run("resnet", "v1", "v2", "--window", "24h", "--source", "production").startswith(
        "Metric history (avg over the last 24h from production), baseline v1"
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["resnet", "v1"], "versions: 2 to 20 versions"),
        (["resnet", *[f"v{i}" for i in range(21)]], "versions: 2 to 20 versions"),
        (["resnet", "v1", "v9"], "v9"),
        (["resnet", "v1", "v2", "v1"], "'v1' is named twice"),
        (["resnet", "v1", "v2", "--window", "forever"], "window: A duration"),
        (["resnet", "v1", "v2", "--agg", "median"], "agg"),
        (["resnet:v1", "v2"], "MODEL:VERSION"),
        (["nope", "v1", "v2"], "nope"),
    ],
)
def test_refusals_name_the_field(scored, args, match):
    assert_argument_error("compare", args, match)
