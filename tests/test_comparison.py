"""Comparison (issue #9): GET /models/{name}/compare and GET /compare, with known values: each version's
facts, every metric's differences from the baseline and which is better by the metric's direction,
drop-in compatibility, the training_config diff, and the 400/404s naming what is wrong."""

from __future__ import annotations

import json

import pytest

from models_app.comparison import config_diff, metric_direction
from models_app.models import RegisteredModel
from tests.conftest import deployed

pytestmark = pytest.mark.django_db


@pytest.fixture
def vision(api, make_model, make_version):
    model = make_model("vision")
    make_version(
        model,
        "1.0",
        data=b"one",
        accuracy="0.8",
        metrics=json.dumps({"auc": 0.9, "val_loss": 0.3, "latency_ms": 12.0}),
        input_shape="[1,3,224,224]",
        output_shape="[1,10]",
        training_config=json.dumps({"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}, "aug": True}),
    )
    make_version(
        model,
        "2.0",
        data=b"two",
        accuracy="0.85",
        metrics=json.dumps({"auc": 0.92, "val_loss": 0.25, "latency_ms": 15.0}),
        input_shape="[1,3,224,224]",
        output_shape="[1,10]",
        training_config=json.dumps({"lr": 0.05, "optimizer": {"name": "adam"}, "epochs": 10, "aug": 1}),
    )
    make_version(model, "3.0", data=None, format="pytorch", metrics=json.dumps({"auc": 0.9}), output_shape="[1,20]")
    deployed(api, model, "2.0", "production")
    return model


def metric(body: dict, name: str) -> dict:
    return next(row for row in body["metrics"] if row["name"] == name)


def test_two_versions_side_by_side(api, vision):
    response = api.get("/models/vision/compare", {"versions": "1.0,2.0"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["baseline"] == "1.0"
    one, two = body["versions"]
    assert (one["version"], two["version"]) == ("1.0", "2.0")
    assert one["file_size"] == 3 and len(one["sha256"]) == 64 and one["deployed_to"] == []
    assert two["deployed_to"] == ["production"] and one["is_default"] is True
    assert two["metrics"] == {"accuracy": 0.85, "auc": 0.92, "val_loss": 0.25, "latency_ms": 15.0}
    assert [row["name"] for row in body["metrics"]] == ["accuracy", "auc", "latency_ms", "val_loss"]

    auc = metric(body, "auc")
    assert auc["direction"] == "higher" and auc["best"] == ["2.0"]
    [diff] = auc["differences"]
    assert diff["version"] == "2.0" and diff["better"] is True
    assert diff["absolute"] == pytest.approx(0.02) and diff["relative"] == pytest.approx(0.02 / 0.9)

    loss = metric(body, "val_loss")
    assert loss["direction"] == "lower" and loss["best"] == ["2.0"] and loss["differences"][0]["better"] is True
    latency = metric(body, "latency_ms")
    assert latency["direction"] == "lower" and latency["best"] == ["1.0"]
    assert latency["differences"][0] == {"version": "2.0", "absolute": 3.0, "relative": 0.25, "better": False}

    assert body["compatibility"] == [
        {"version": "2.0", "drop_in": True, "same_format": True, "same_input_shape": True, "same_output_shape": True}
    ]
    assert body["training_config"] == [
        {
            "version": "2.0",
            "added": {"epochs": 10},
            "removed": {"optimizer.momentum": 0.9},
            "changed": {
                "aug": {"from": True, "to": 1},
                "lr": {"from": 0.1, "to": 0.05},
                "optimizer.name": {"from": "sgd", "to": "adam"},
            },
        }
    ]


def test_default_latest_and_a_target_stand_for_versions(api, vision):
    body = api.get("/models/vision/compare", {"versions": "default,@Production,latest"}).json()
    assert [(v["asked"], v["version"]) for v in body["versions"]] == [
        ("default", "1.0"),
        ("@Production", "2.0"),
        ("latest", "3.0"),
    ]
    third = body["compatibility"][1]
    assert third["drop_in"] is False and third["same_format"] is False and third["same_output_shape"] is False
    auc = metric(body, "auc")
    assert auc["best"] == ["@Production"] and auc["differences"][1]["better"] is None  # equal to the baseline
    assert metric(body, "accuracy")["values"] == {"default": 0.8, "@Production": 0.85, "latest": None}
    assert metric(body, "accuracy")["differences"][1] == {
        "version": "latest",
        "absolute": None,
        "relative": None,
        "better": None,
    }


def test_a_model_turns_a_metrics_direction_round(api, vision):
    response = api.patch("/models/vision", {"metric_directions": {"auc": "lower"}}, format="json")
    assert response.status_code == 200 and response.json()["metric_directions"] == {"auc": "lower"}
    auc = metric(api.get("/models/vision/compare", {"versions": "1.0,2.0"}).json(), "auc")
    assert auc["direction"] == "lower" and auc["best"] == ["1.0"] and auc["differences"][0]["better"] is False


@pytest.mark.parametrize(
    ("directions", "message"),
    [
        ({"auc": "up"}, "'higher' or 'lower'"),
        ({"bad name": "lower"}, "not a valid name"),
        (["auc"], "JSON object"),
    ],
)
def test_bad_directions_are_refused_naming_the_field(api, vision, directions, message):
    response = api.patch("/models/vision", {"metric_directions": directions}, format="json")
    assert response.status_code == 400 and message in json.dumps(response.json()["errors"]["metric_directions"])
    assert RegisteredModel.objects.get(name="vision").metric_directions == {}


def test_across_models(api, vision, make_model, make_version):
    other = make_model("other")
    make_version(other, "7", data=b"seven", metrics=json.dumps({"auc": 0.95}))
    body = api.get("/compare", {"versions": "vision:2.0,other:7"}).json()
    assert [(v["model"], v["version"]) for v in body["versions"]] == [("vision", "2.0"), ("other", "7")]
    assert metric(body, "auc")["best"] == ["other:7"]
    assert body["compatibility"][0]["drop_in"] is False  # no shapes given for other:7
    assert api.get("/compare", {"versions": "vision:default,vision:@production"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "versions", "status", "says"),
    [
        ("/models/vision/compare", "1.0", 400, "2 to 20"),
        ("/models/vision/compare", ",".join(f"v{i}" for i in range(21)), 400, "2 to 20"),
        ("/models/vision/compare", "1.0, 2.0", 400, "without spaces"),
        ("/models/vision/compare", "1.0,,2.0", 400, "2 to 20 versions separated by commas"),
        ("/models/vision/compare", "1.0,9.9", 404, "Version '9.9'"),
        ("/models/nope/compare", "1.0,2.0", 404, "Model 'nope'"),
        ("/models/vision/compare", "1.0,@canary", 404, "no version active on 'canary'"),
        ("/models/vision/compare", "1.0,@nowhere", 404, "nowhere"),
        ("/compare", "vision:1.0,2.0", 400, "model:version names"),
        ("/compare", "vision:1.0,nope:1", 404, "Model 'nope'"),
    ],
)
def test_bad_requests_name_what_is_wrong(api, vision, path, versions, status, says):
    response = api.get(path, {"versions": versions})
    assert response.status_code == status, response.json()
    assert says in json.dumps(response.json())
    if status == 400:
        assert "versions" in json.dumps(response.json())


def test_versions_is_required_and_unknown_parameters_are_refused(api, vision):
    response = api.get("/models/vision/compare")
    assert response.status_code == 400 and response.json()["errors"] == {"versions": ["This field is required."]}
    response = api.get("/models/vision/compare", {"versions": "1.0,2.0", "bogus": "1"})
    assert response.status_code == 400 and response.json()["errors"] == {"bogus": ["Unknown field."]}


def test_config_diff_nests_and_tells_types_apart():
    assert config_diff(None, {"a": 1}) == {"added": {"a": 1}, "removed": {}, "changed": {}}
    assert config_diff({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2, "d": 3}}}) == {
        "added": {"a.b.d": 3},
        "removed": {},
        "changed": {"a.b.c": {"from": 1, "to": 2}},
    }
    assert config_diff({"a": [1, 2]}, {"a": [1, 2]}) == {"added": {}, "removed": {}, "changed": {}}
    assert config_diff({"a": False}, {"a": 0})["changed"] == {"a": {"from": False, "to": 0}}


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("auc", "higher"),
        ("accuracy", "higher"),
        ("val_loss", "lower"),
        ("p99_latency", "lower"),
        ("Error_Rate", "lower"),
        ("rmse", "lower"),
    ],
)
def test_directions_by_name(vision, name, direction):
    assert metric_direction(vision, name) == direction


def test_a_token_limited_to_a_model_pattern_compares_only_those_models(api, vision, make_model, make_version, settings):
    from rest_framework.test import APIClient

    from registry_site.authentication import issue_token
    from registry_site.permissions import TokenScope
    from tests.conftest import production_mode, user_with_role

    other = make_model("other")
    make_version(other, "7", data=b"seven")
    production_mode(settings)
    _, token = issue_token(
        user=user_with_role("viewer", "viewer"), name="t", scope=TokenScope.parse(["read"], models="vis*")
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/models/vision/compare", {"versions": "1.0,2.0"}).status_code == 200
    assert client.get("/compare", {"versions": "vision:1.0,vision:2.0"}).status_code == 200
    refusal = client.get("/compare", {"versions": "vision:1.0,other:7"})
    assert refusal.status_code == 403 and "'other' is not one" in refusal.json()["detail"]
    assert client.get("/models/other/compare", {"versions": "7,default"}).status_code == 403
    assert APIClient().get("/compare", {"versions": "vision:1.0,vision:2.0"}).status_code in (401, 403)


def test_a_window_of_history_is_compared_instead_of_the_registered_metrics(api, vision):
    """?window=24h&source=production: each version's points from production in the last day, averaged."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()

    def points(version: str, *rows: tuple[str, float, str, timedelta]) -> None:
        body = [
            {"name": name, "value": value, "source": source, "timestamp": (now - ago).isoformat()}
            for name, value, source, ago in rows
        ]
        response = api.post(f"/models/vision/versions/{version}/metrics", body, format="json")
        assert response.status_code == 201, response.json()

    hour, days = timedelta(hours=1), timedelta(days=3)
    points("1.0", ("auc", 0.80, "production", hour), ("auc", 0.70, "production", hour), ("auc", 0.99, "canary", hour))
    points("1.0", ("auc", 0.10, "production", days))  # outside the window
    points("2.0", ("auc", 0.85, "production", hour), ("val_loss", 0.2, "production", hour))
    body = api.get("/models/vision/compare", {"versions": "1.0,2.0", "window": "24h", "source": "production"}).json()
    assert body["basis"] == {"kind": "history", "window": "24h", "source": "production", "agg": "avg"}
    one, two = body["versions"]
    assert one["metrics"] == {"auc": pytest.approx(0.75)} and one["points"] == {"auc": 2}
    assert two["metrics"] == {"auc": 0.85, "val_loss": 0.2} and two["points"] == {"auc": 1, "val_loss": 1}
    auc = metric(body, "auc")
    assert auc["best"] == ["2.0"] and auc["differences"][0]["absolute"] == pytest.approx(0.10)
    # Every source, the maximum; and the registered metrics when no window is asked.
    wide = api.get("/models/vision/compare", {"versions": "1.0,2.0", "window": "7d", "agg": "max"}).json()
    assert wide["versions"][0]["metrics"]["auc"] == 0.99 and wide["versions"][0]["points"]["auc"] == 5  # + registration
    # A source (or agg) without a window: all of the history.
    every = api.get("/models/vision/compare", {"versions": "1.0,2.0", "source": "production"}).json()
    assert every["basis"] == {"kind": "history", "window": None, "source": "production", "agg": "avg"}
    assert every["versions"][0]["metrics"]["auc"] == pytest.approx((0.8 + 0.7 + 0.1) / 3)
    plain = api.get("/models/vision/compare", {"versions": "1.0,2.0"}).json()
    assert (
        plain["basis"] == {"kind": "registered", "window": None, "source": None, "agg": None}
        and plain["versions"][0]["points"] is None
    )
    assert (
        api.get("/compare", {"versions": "vision:1.0,vision:2.0", "window": "24h"}).json()["basis"]["kind"] == "history"
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"window": "24"}, "window"),
        ({"window": "0h"}, "window"),
        ({"window": "1d", "agg": "median"}, "agg"),
        ({"window": "1d", "source": "bad source"}, "source"),
    ],
)
def test_a_bad_window_is_a_400_naming_the_field(api, vision, query, field):
    response = api.get("/models/vision/compare", {"versions": "1.0,2.0", **query})
    assert response.status_code == 400 and field in response.json()["errors"], response.json()


def test_a_version_named_twice_is_a_400_naming_versions(api, world):
    response = api.get("/models/resnet/compare?versions=v1,v2,v1")
    assert response.status_code == 400
    assert response.json()["errors"] == {"versions": ["versions: 'v1' is named twice; name each version once."]}
    across = api.get("/compare?versions=resnet:v1,resnet:v1")
    assert across.status_code == 400 and "'resnet:v1' is named twice" in across.json()["detail"]
    assert api.get("/models/resnet/compare?versions=default,v1").status_code == 200  # two names, one version
