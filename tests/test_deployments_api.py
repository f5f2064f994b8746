"""POST /deploy, GET /deployments, GET /deployments/{id} and POST /deployments/{id}/rollback."""

from __future__ import annotations

import pytest

from deployments_app.models import Deployment
from models_app.models import ModelVersion
from tests.conftest import deploy, deployed

pytestmark = pytest.mark.django_db

SEED_DEPLOY = {
    "model_name": "image_classifier",
    "version": "v1",
    "deployment_target": "production",
    "deployed_by": "admin",
}


def rollback(api, deployment_id: int, reason: str | None = "broken"):
    body = {} if reason is None else {"reason": reason}
    return api.post(f"/deployments/{deployment_id}/rollback", body, format="json")


def deployed_to(api, model, version: str) -> list[str]:
    return api.get(f"/models/{model.name}/versions/{version}").json()["deployed_to"]


def status_of(deployment_id: int) -> str:
    return Deployment.objects.get(pk=deployment_id).deployment_status


def active(model, target: str = "production") -> list[str]:
    return list(
        Deployment.objects.filter(model=model, deployment_target=target, deployment_status="active").values_list(
            "model_version__version", flat=True
        )
    )


@pytest.fixture
def classifier(make_model, make_version):
    """The seed's image_classifier with three versions, each with its file; v1 is the default."""
    model = make_model(name="image_classifier")
    for version in ("v1", "v2", "v3"):
        make_version(model, version, data=version.encode())
    return model


# --- Deploy -------------------------------------------------------------------------------------------
def test_deploy_with_the_seed_body(api, classifier):
    response = api.post("/deploy", SEED_DEPLOY, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"] == Deployment.objects.get().pk
    assert body["model_name"] == "image_classifier"
    assert body["version"] == "v1"
    assert body["model_version_id"] == ModelVersion.objects.get(model=classifier, version="v1").pk
    assert body["deployment_target"] == "production"
    assert body["deployment_status"] == "active"
    assert body["deployed_by"] == "admin"
    assert body["deployed_at"]
    assert body["rollback_at"] is None
    assert body["rollback_reason"] == ""
    assert deployed_to(api, classifier, "v1") == ["production"]


def test_deployed_by_is_optional(api, classifier):
    response = api.post(
        "/deploy", {"model_name": "image_classifier", "version": "v1", "deployment_target": "staging"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["deployed_by"] == ""


def test_deployment_config_is_stored(api, classifier):
    body = deployed(api, classifier, "v1", deployment_config={"replicas": 3, "gpu": {"type": "t4"}})

    assert body["deployment_config"] == {"replicas": 3, "gpu": {"type": "t4"}}
    assert Deployment.objects.get().deployment_config == {"replicas": 3, "gpu": {"type": "t4"}}


def test_deployment_config_defaults_to_the_versions(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", deployment_config='{"replicas": 2}')

    body = deployed(api, model, "v1")

    assert body["deployment_config"] == {"replicas": 2}


def test_deploying_the_active_version_again_is_200_and_adds_no_row(api, classifier):
    first = deployed(api, classifier, "v1")

    again = deploy(api, classifier, "v1")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["deployment_status"] == "active"
    assert Deployment.objects.count() == 1
    assert deployed_to(api, classifier, "v1") == ["production"]


def test_deploying_another_version_supersedes_the_previous(api, classifier):
    first = deployed(api, classifier, "v1")

    second = deployed(api, classifier, "v2")

    assert second["id"] != first["id"]
    assert second["deployment_status"] == "active"
    assert status_of(first["id"]) == "superseded"
    assert api.get(f"/deployments/{first['id']}").json()["deployment_status"] == "superseded"
    assert active(classifier) == ["v2"]
    assert deployed_to(api, classifier, "v1") == []
    assert deployed_to(api, classifier, "v2") == ["production"]
    assert Deployment.objects.count() == 2


def test_redeploying_a_superseded_version_adds_a_row(api, classifier):
    first = deployed(api, classifier, "v1")
    deployed(api, classifier, "v2")

    third = deploy(api, classifier, "v1")

    assert third.status_code == 201
    assert third.json()["id"] != first["id"]
    assert active(classifier) == ["v1"]
    assert Deployment.objects.count() == 3


def test_targets_are_independent(api, classifier):
    prod = deployed(api, classifier, "v1", "production")
    staging = deployed(api, classifier, "v1", "staging")
    assert deployed_to(api, classifier, "v1") == ["production", "staging"]

    deployed(api, classifier, "v2", "staging")

    assert status_of(prod["id"]) == "active"
    assert status_of(staging["id"]) == "superseded"
    assert deployed_to(api, classifier, "v1") == ["production"]
    assert deployed_to(api, classifier, "v2") == ["staging"]


def test_models_are_independent_on_one_target(api, classifier, make_model, make_version):
    other = make_model(name="detector")
    make_version(other, "v1", data=b"detector")
    mine = deployed(api, classifier, "v1")

    deployed(api, other, "v1")

    assert status_of(mine["id"]) == "active"
    assert active(classifier) == ["v1"]
    assert active(other) == ["v1"]


def test_deploying_a_version_without_a_file_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)

    response = deploy(api, model, "v1")

    assert response.status_code == 409
    assert "file" in response.json()["detail"]
    assert not Deployment.objects.exists()


def test_deploying_once_the_file_is_attached(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)
    attached = api.put(f"/models/{model.name}/versions/v1/file", b"late", content_type="application/octet-stream")
    assert attached.status_code == 200

    assert deploy(api, model, "v1").status_code == 201


def test_deploying_an_archived_version_is_409(api, classifier):
    assert api.patch(f"/models/{classifier.name}/versions/v3", {"status": "archived"}, format="json").status_code == 200

    response = deploy(api, classifier, "v3")

    assert response.status_code == 409
    assert "archived" in response.json()["detail"]
    assert not Deployment.objects.exists()


def test_deploying_an_archived_version_leaves_the_active_one(api, classifier):
    current = deployed(api, classifier, "v1")
    api.patch(f"/models/{classifier.name}/versions/v3", {"status": "archived"}, format="json")

    assert deploy(api, classifier, "v3").status_code == 409
    assert status_of(current["id"]) == "active"


@pytest.mark.parametrize(
    "model_name, version",
    [("nope", "v1"), ("image_classifier", "v9"), ("image_classifier", "default")],
)
def test_unknown_model_or_version_is_404(api, classifier, model_name, version):
    response = deploy(api, model_name, version)

    assert response.status_code == 404
    assert response.json()["detail"]
    assert not Deployment.objects.exists()


def test_version_of_another_model_is_404(api, classifier, make_model, make_version):
    make_version(make_model(name="other"), "v7", data=b"other")

    assert deploy(api, classifier, "v7").status_code == 404
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    "target",
    ["", "../prod", "a/b", ".hidden", "x" * 65, "pro duction", "prød", "prod\x00", "prod;rm", "a\\b"],
    ids=repr,
)
def test_bad_target_names_are_400(api, classifier, target):
    response = deploy(api, classifier, "v1", target)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"deployment_target"}
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("target", ["production", "eu-west-1.prod", "canary_2", "x" * 64])
def test_good_target_names(api, classifier, target):
    # A good name is one a target can have; deploying there needs the target to exist.
    if target != "production":
        assert api.post("/targets", {"name": target}, format="json").status_code == 201
    response = deploy(api, classifier, "v1", target)

    assert response.status_code == 201
    assert response.json()["deployment_target"] == target


@pytest.mark.parametrize("field, value", [("model_name", "../x"), ("version", "a/b"), ("deployed_by", "x" * 151)])
def test_bad_values_are_400_naming_the_field(api, classifier, field, value):
    body = {**SEED_DEPLOY, field: value}

    response = api.post("/deploy", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Deployment.objects.exists()


def test_missing_fields_are_named(api, classifier):
    response = api.post("/deploy", {"deployed_by": "admin"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"model_name", "version", "deployment_target"}


def test_unknown_field_is_400(api, classifier):
    response = api.post("/deploy", {**SEED_DEPLOY, "environment": "prod"}, format="json")

    assert response.status_code == 400
    assert "environment" in response.json()["errors"]
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    "config",
    [
        "replicas=2",
        [1, 2],
        3,
        '["as", "text"]',
    ],
)
def test_deployment_config_must_be_an_object(api, classifier, config):
    response = api.post("/deploy", {**SEED_DEPLOY, "deployment_config": config}, format="json")

    assert response.status_code == 400
    assert "deployment_config" in response.json()["errors"]
    assert not Deployment.objects.exists()


def test_deploy_with_wrong_content_type_is_415(api, classifier):
    response = api.post("/deploy", "model_name=image_classifier", content_type="text/plain")

    assert response.status_code == 415
    assert not Deployment.objects.exists()


def test_deeply_nested_deploy_body_is_400_not_500(api, classifier):
    response = api.post("/deploy", "[" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert not Deployment.objects.exists()


def test_deploy_only_accepts_post(api, classifier):
    assert api.get("/deploy").status_code == 405


# --- List, filters, detail ----------------------------------------------------------------------------
@pytest.fixture
def history(api, classifier, make_model, make_version):
    """image_classifier: v1 -> v2 on production (v1 superseded), v1 on staging, v3 on canary rolled back;
    detector: v1 on production."""
    detector = make_model(name="detector")
    make_version(detector, "v1", data=b"detector")
    ids = {
        "prod_v1": deployed(api, classifier, "v1", "production")["id"],
        "prod_v2": deployed(api, classifier, "v2", "production")["id"],
        "staging_v1": deployed(api, classifier, "v1", "staging")["id"],
        "canary_v3": deployed(api, classifier, "v3", "canary")["id"],
        "detector": deployed(api, detector, "v1", "production")["id"],
    }
    assert rollback(api, ids["canary_v3"]).status_code == 200
    return ids


def listed(api, **params) -> list[int]:
    response = api.get("/deployments", params)
    assert response.status_code == 200, response.json()
    return [d["id"] for d in response.json()["results"]]


def test_list_deployments(api, history):
    response = api.get("/deployments")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [d["id"] for d in body["results"]] == sorted(history.values(), reverse=True)


def test_filter_by_model(api, history):
    assert listed(api, model="detector") == [history["detector"]]
    assert set(listed(api, model="image_classifier")) == set(history.values()) - {history["detector"]}
    assert listed(api, model="nope") == []


def test_filter_by_version(api, history):
    assert set(listed(api, version="v1")) == {history["prod_v1"], history["staging_v1"], history["detector"]}
    assert listed(api, version="v2") == [history["prod_v2"]]


def test_filter_by_target(api, history):
    assert set(listed(api, target="production")) == {history["prod_v1"], history["prod_v2"], history["detector"]}
    assert listed(api, target="canary") == [history["canary_v3"]]


@pytest.mark.parametrize(
    "status, expected",
    [
        ("active", {"prod_v2", "staging_v1", "detector"}),
        ("superseded", {"prod_v1"}),
        ("rolled_back", {"canary_v3"}),
        ("failed", set()),
    ],
)
def test_filter_by_status(api, history, status, expected):
    assert set(listed(api, status=status)) == {history[key] for key in expected}


def test_filters_combine(api, history):
    assert listed(api, model="image_classifier", target="production", status="active") == [history["prod_v2"]]
    assert listed(api, model="image_classifier", version="v1", target="staging") == [history["staging_v1"]]


def test_filter_by_unknown_status_is_400(api, history):
    response = api.get("/deployments", {"status": "running"})

    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_get_deployment(api, history):
    response = api.get(f"/deployments/{history['canary_v3']}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == history["canary_v3"]
    assert body["model_name"] == "image_classifier"
    assert body["version"] == "v3"
    assert body["deployment_target"] == "canary"
    assert body["deployment_status"] == "rolled_back"
    assert body["rollback_at"]
    assert body["rollback_reason"] == "broken"


def test_get_unknown_deployment_is_404(api, db):
    assert api.get("/deployments/999999").status_code == 404
    assert api.get("/deployments/abc").status_code == 404
    # Beyond a 64-bit id: still a 404, not a database overflow.
    assert api.get("/deployments/99999999999999999999").status_code == 404
    assert api.post("/deployments/99999999999999999999/rollback").status_code == 404


# --- Rollback -----------------------------------------------------------------------------------------
def test_rollback_restores_the_previous_deployment(api, classifier):
    first = deployed(api, classifier, "v1")
    second = deployed(api, classifier, "v2")

    response = rollback(api, second["id"], "accuracy regression")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["rolled_back"]["id"] == second["id"]
    assert body["rolled_back"]["deployment_status"] == "rolled_back"
    assert body["rolled_back"]["rollback_at"]
    assert body["rolled_back"]["rollback_reason"] == "accuracy regression"
    assert body["restored"]["id"] == first["id"]
    assert body["restored"]["deployment_status"] == "active"
    assert body["restored"]["version"] == "v1"
    assert "v1" in body["detail"]

    row = Deployment.objects.get(pk=second["id"])
    assert row.deployment_status == "rolled_back"
    assert row.rollback_at is not None
    assert row.rollback_reason == "accuracy regression"
    assert status_of(first["id"]) == "active"
    assert active(classifier) == ["v1"]
    assert deployed_to(api, classifier, "v1") == ["production"]
    assert deployed_to(api, classifier, "v2") == []
    assert Deployment.objects.count() == 2  # restoring reuses the earlier row


def test_rollback_with_nothing_earlier_leaves_the_target_empty(api, classifier):
    only = deployed(api, classifier, "v1")

    response = rollback(api, only["id"])

    assert response.status_code == 200
    body = response.json()
    assert body["restored"] is None
    assert body["rolled_back"]["deployment_status"] == "rolled_back"
    assert "empty" in body["detail"]
    assert active(classifier) == []
    assert deployed_to(api, classifier, "v1") == []


def test_rollbacks_walk_back_through_history(api, classifier):
    d1 = deployed(api, classifier, "v1")
    d2 = deployed(api, classifier, "v2")
    d3 = deployed(api, classifier, "v3")

    assert rollback(api, d3["id"]).json()["restored"]["id"] == d2["id"]
    assert active(classifier) == ["v2"]
    assert rollback(api, d2["id"]).json()["restored"]["id"] == d1["id"]
    assert active(classifier) == ["v1"]
    assert rollback(api, d1["id"]).json()["restored"] is None
    assert active(classifier) == []
    assert [status_of(d["id"]) for d in (d1, d2, d3)] == ["rolled_back"] * 3


def test_rollback_restores_the_most_recent_superseded(api, classifier):
    deployed(api, classifier, "v1")
    d2 = deployed(api, classifier, "v2")
    deployed(api, classifier, "v1")  # v1 again: a new row, d2 superseded most recently
    current = Deployment.objects.get(deployment_status="active")

    response = rollback(api, current.pk)

    assert response.json()["restored"]["id"] == d2["id"]
    assert active(classifier) == ["v2"]


def test_rollback_skips_archived_versions(api, classifier):
    d1 = deployed(api, classifier, "v1")
    d2 = deployed(api, classifier, "v2")
    d3 = deployed(api, classifier, "v3")
    archived = api.patch(f"/models/{classifier.name}/versions/v2", {"status": "archived"}, format="json")
    assert archived.status_code == 200, archived.json()

    response = rollback(api, d3["id"])

    assert response.status_code == 200
    assert response.json()["restored"]["id"] == d1["id"]
    assert status_of(d2["id"]) == "superseded"
    assert active(classifier) == ["v1"]


def test_rollback_leaves_the_target_empty_when_only_archived_versions_remain(api, classifier):
    d2 = deployed(api, classifier, "v2")
    d3 = deployed(api, classifier, "v3")
    api.patch(f"/models/{classifier.name}/versions/v2", {"status": "archived"}, format="json")

    body = rollback(api, d3["id"]).json()

    assert body["restored"] is None
    assert "empty" in body["detail"]
    assert status_of(d2["id"]) == "superseded"
    assert active(classifier) == []


def test_rollback_only_touches_its_target(api, classifier):
    staging = deployed(api, classifier, "v1", "staging")
    deployed(api, classifier, "v1", "production")
    prod_v2 = deployed(api, classifier, "v2", "production")
    staging_v3 = deployed(api, classifier, "v3", "staging")

    rollback(api, prod_v2["id"])

    assert active(classifier, "production") == ["v1"]
    assert active(classifier, "staging") == ["v3"]
    assert status_of(staging_v3["id"]) == "active"
    assert status_of(staging["id"]) == "superseded"


def test_rollback_without_a_body(api, classifier):
    only = deployed(api, classifier, "v1")

    response = api.post(f"/deployments/{only['id']}/rollback")

    assert response.status_code == 200
    assert response.json()["rolled_back"]["rollback_reason"] == ""
    assert status_of(only["id"]) == "rolled_back"


def test_rolling_back_a_superseded_deployment_is_409(api, classifier):
    first = deployed(api, classifier, "v1")
    second = deployed(api, classifier, "v2")

    response = rollback(api, first["id"])

    assert response.status_code == 409
    assert "not active" in response.json()["detail"]
    assert status_of(first["id"]) == "superseded"
    assert status_of(second["id"]) == "active"
    assert Deployment.objects.get(pk=first["id"]).rollback_at is None


def test_rolling_back_twice_is_409(api, classifier):
    first = deployed(api, classifier, "v1")
    second = deployed(api, classifier, "v2")
    assert rollback(api, second["id"], "first reason").status_code == 200

    response = rollback(api, second["id"], "second reason")

    assert response.status_code == 409
    row = Deployment.objects.get(pk=second["id"])
    assert row.rollback_reason == "first reason"
    assert status_of(first["id"]) == "active"


def test_rollback_unknown_deployment_is_404(api, db):
    assert rollback(api, 999999).status_code == 404


def test_rollback_unknown_field_is_400(api, classifier):
    only = deployed(api, classifier, "v1")

    response = api.post(f"/deployments/{only['id']}/rollback", {"why": "x"}, format="json")

    assert response.status_code == 400
    assert "why" in response.json()["errors"]
    assert status_of(only["id"]) == "active"


def test_redeploying_a_rolled_back_version(api, classifier):
    first = deployed(api, classifier, "v1")
    rollback(api, first["id"])

    response = deploy(api, classifier, "v1")

    assert response.status_code == 201
    assert response.json()["id"] != first["id"]
    assert status_of(first["id"]) == "rolled_back"
    assert active(classifier) == ["v1"]


def test_a_rolled_back_version_can_be_archived_but_not_deleted(api, classifier):
    """Once no deployment of it is active, a non-default version may be archived."""
    d2 = deployed(api, classifier, "v2")
    rollback(api, d2["id"])

    response = api.patch(f"/models/{classifier.name}/versions/v2", {"status": "archived"}, format="json")

    assert response.status_code == 200
    # ...but its history still keeps it from being deleted.
    assert api.delete(f"/models/{classifier.name}/versions/v2").status_code == 409
