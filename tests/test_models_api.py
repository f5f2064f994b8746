"""GET/POST /models and GET/PATCH/DELETE /models/{name}: the seed's model endpoints and their rules."""

from __future__ import annotations

import pytest

from deployments_app.models import Deployment
from models_app.models import ModelType, ModelVersion, RegisteredModel
from tests.conftest import deployed

pytestmark = pytest.mark.django_db

SEED_MODEL = {
    "name": "image_classifier",
    "description": "ResNet-50 image classifier",
    "model_type": "classification",
}


def names(response) -> list[str]:
    return [item["name"] for item in response.json()["results"]]


# --- Create ------------------------------------------------------------------------------------------
def test_create_model_with_the_seed_body(api):
    response = api.post("/models", SEED_MODEL, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "image_classifier"
    assert body["description"] == "ResNet-50 image classifier"
    assert body["model_type"] == "classification"
    assert body["is_active"] is True
    assert body["default_version"] is None
    assert body["created_at"] and body["updated_at"]
    row = RegisteredModel.objects.get(name="image_classifier")
    assert row.model_type == "classification"
    assert row.description == "ResNet-50 image classifier"


def test_create_model_with_only_required_fields(api):
    response = api.post("/models", {"name": "mobilenet_v3", "model_type": "audio"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["description"] == ""
    assert RegisteredModel.objects.filter(name="mobilenet_v3", model_type="audio").exists()


@pytest.mark.parametrize("name", ["a", "resnet-50", "resnet_50.v2", "A.b-c_d", "x" * 128, "0model"])
def test_create_model_accepts_valid_names(api, name):
    response = api.post("/models", {"name": name, "model_type": "classification"}, format="json")

    assert response.status_code == 201, response.json()
    assert RegisteredModel.objects.filter(name=name).exists()
    # And the model is reachable under that name (dots included).
    assert api.get(f"/models/{name}").json()["name"] == name


def test_duplicate_model_name_is_409(api, make_model):
    make_model(name="image_classifier")

    response = api.post("/models", SEED_MODEL, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "already exists" in body["detail"]
    assert "name" in body["errors"]
    assert RegisteredModel.objects.filter(name="image_classifier").count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/b",
        ".hidden",
        "..",
        "x" * 129,
        "modèle",
        "名前",
        "ab\u202ecd",  # right-to-left override
        "my model",
        "a\x00b",
        "a\\b",
        "a;b",
        "a\nb",
        "",
    ],
    ids=repr,
)
def test_invalid_model_name_is_400_naming_the_field(api, name):
    response = api.post("/models", {"name": name, "model_type": "classification"}, format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body["errors"]) == {"name"}
    assert body["detail"]
    assert RegisteredModel.objects.count() == 0


def test_missing_required_fields_are_named(api):
    response = api.post("/models", {"description": "no name"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "model_type"}


def test_unknown_model_type_is_400_listing_allowed_values(api):
    response = api.post("/models", {"name": "m", "model_type": "regression"}, format="json")

    assert response.status_code == 400
    body = response.json()
    message = " ".join(body["errors"]["model_type"])
    assert "regression" in message
    for allowed in ModelType.values:
        assert allowed in message
    assert RegisteredModel.objects.count() == 0


def test_unknown_field_is_400(api):
    response = api.post("/models", {"name": "m", "model_type": "classification", "colour": "blue"}, format="json")

    assert response.status_code == 400
    assert "colour" in response.json()["errors"]
    assert RegisteredModel.objects.count() == 0


@pytest.mark.parametrize("field", ["id", "created_at", "default_version"])
def test_read_only_field_in_create_is_400(api, field):
    response = api.post("/models", {"name": "m", "model_type": "classification", field: "x"}, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert RegisteredModel.objects.count() == 0


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"a string"', "42"])
def test_body_that_is_not_an_object_is_400(api, body):
    response = api.post("/models", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]
    assert RegisteredModel.objects.count() == 0


def test_malformed_json_is_400(api):
    response = api.post("/models", '{"name": "m", ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_deeply_nested_json_is_400_not_500(api):
    response = api.post("/models", "[" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]


def test_wrong_content_type_is_415(api):
    response = api.post("/models", "name=m", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["detail"]
    assert RegisteredModel.objects.count() == 0


def test_create_model_from_a_form(api):
    """The same endpoint takes a form (every value as text)."""
    response = api.post("/models", {"name": "formed", "model_type": "segmentation", "is_active": "false"})

    assert response.status_code == 201, response.json()
    assert RegisteredModel.objects.get(name="formed").is_active is False


# --- List and filters --------------------------------------------------------------------------------
def test_list_models(api, make_model):
    make_model(name="b_model")
    make_model(name="a_model")

    response = api.get("/models")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert names(response) == ["a_model", "b_model"]


def test_list_shows_default_version(api, make_model, make_version):
    model = make_model(name="with_default")
    make_version(model, "v1.0.0")
    make_model(name="without_default")

    results = {item["name"]: item for item in api.get("/models").json()["results"]}

    assert results["with_default"]["default_version"] == "v1.0.0"
    assert results["without_default"]["default_version"] is None


def test_filter_by_model_type(api, make_model):
    make_model(name="cls", model_type="classification")
    make_model(name="det", model_type="object_detection")
    make_model(name="face", model_type="face_recognition")

    response = api.get("/models", {"model_type": "object_detection"})

    assert response.status_code == 200
    assert names(response) == ["det"]


def test_filter_by_unknown_model_type_is_400(api, make_model):
    make_model(name="cls")

    response = api.get("/models", {"model_type": "regression"})

    assert response.status_code == 400
    assert "model_type" in response.json()["errors"]


@pytest.mark.parametrize(
    "value, expected",
    [("true", ["on"]), ("True", ["on"]), ("1", ["on"]), ("false", ["off"]), ("False", ["off"]), ("0", ["off"])],
)
def test_filter_by_is_active(api, make_model, value, expected):
    make_model(name="on", is_active=True)
    make_model(name="off", is_active=False)

    response = api.get("/models", {"is_active": value})

    assert response.status_code == 200
    assert names(response) == expected


@pytest.mark.parametrize("value", ["maybe", "2", "yes-please", "null"])
def test_filter_by_invalid_is_active_is_400(api, make_model, value):
    make_model(name="on", is_active=True)
    make_model(name="off", is_active=False)

    response = api.get("/models", {"is_active": value})

    assert response.status_code == 400
    assert "is_active" in response.json()["errors"]


def test_filters_combine(api, make_model):
    make_model(name="cls_on", model_type="classification", is_active=True)
    make_model(name="cls_off", model_type="classification", is_active=False)
    make_model(name="audio_on", model_type="audio", is_active=True)

    response = api.get("/models", {"model_type": "classification", "is_active": "true"})

    assert names(response) == ["cls_on"]


# --- Retrieve ----------------------------------------------------------------------------------------
def test_get_model_by_name(api, make_model):
    make_model(name="image_classifier", description="ResNet")

    response = api.get("/models/image_classifier")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "image_classifier"
    assert body["description"] == "ResNet"
    assert body["model_type"] == "classification"


def test_get_unknown_model_is_404(api):
    response = api.get("/models/nope")

    assert response.status_code == 404
    assert response.json()["detail"]


def test_paths_have_no_trailing_slash_redirects(api, make_model):
    make_model(name="m")

    assert api.get("/models").status_code == 200
    assert api.get("/models/m").status_code == 200
    assert api.get("/models/").status_code == 404


# --- Update ------------------------------------------------------------------------------------------
def test_patch_model_fields(api, make_model):
    make_model(name="m", description="old", model_type="classification")

    response = api.patch(
        "/models/m", {"description": "new", "model_type": "segmentation", "is_active": False}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["description"] == "new"
    assert body["model_type"] == "segmentation"
    assert body["is_active"] is False
    row = RegisteredModel.objects.get(name="m")
    assert (row.description, row.model_type, row.is_active) == ("new", "segmentation", False)


def test_patch_keeps_default_version_in_response(api, make_model, make_version):
    model = make_model(name="m")
    make_version(model, "v1")

    response = api.patch("/models/m", {"description": "x"}, format="json")

    assert response.status_code == 200
    assert response.json()["default_version"] == "v1"


@pytest.mark.parametrize("new_name", ["renamed", "m"])
def test_name_cannot_change_via_patch(api, make_model, new_name):
    model = make_model(name="m", description="old")

    response = api.patch("/models/m", {"name": new_name, "description": "new"}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    model.refresh_from_db()
    assert model.name == "m"
    assert model.description == "old"  # a rejected request changes nothing
    assert not RegisteredModel.objects.filter(name="renamed").exists()


def test_patch_unknown_field_is_400(api, make_model):
    model = make_model(name="m", description="old")

    response = api.patch("/models/m", {"colour": "blue", "description": "new"}, format="json")

    assert response.status_code == 400
    assert "colour" in response.json()["errors"]
    model.refresh_from_db()
    assert model.description == "old"


def test_patch_invalid_model_type_is_400(api, make_model):
    model = make_model(name="m")

    response = api.patch("/models/m", {"model_type": "regression"}, format="json")

    assert response.status_code == 400
    assert "model_type" in response.json()["errors"]
    model.refresh_from_db()
    assert model.model_type == "classification"


def test_patch_unknown_model_is_404(api):
    assert api.patch("/models/nope", {"description": "x"}, format="json").status_code == 404


def test_put_is_not_allowed(api, make_model):
    make_model(name="m")

    response = api.put("/models/m", {"name": "m", "model_type": "audio"}, format="json")

    assert response.status_code == 405
    assert RegisteredModel.objects.get(name="m").model_type == "classification"


# --- Delete ------------------------------------------------------------------------------------------
def test_delete_model_without_versions(api, make_model):
    make_model(name="m")

    response = api.delete("/models/m")

    assert response.status_code == 204
    assert not RegisteredModel.objects.filter(name="m").exists()


def test_delete_model_deletes_its_versions(api, make_model, make_version):
    model = make_model(name="m")
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=b"two")
    other = make_model(name="other")
    make_version(other, "v1", data=b"three")

    response = api.delete("/models/m")

    assert response.status_code == 204
    assert not RegisteredModel.objects.filter(name="m").exists()
    assert not ModelVersion.objects.filter(model__name="m").exists()
    assert ModelVersion.objects.filter(model=other).count() == 1
    assert api.get("/models/m/versions").status_code == 404


def test_delete_model_with_active_deployment_is_409(api, make_model, make_version):
    model = make_model(name="m")
    make_version(model, "v1")
    deployed(api, "m", "v1")

    response = api.delete("/models/m")

    assert response.status_code == 409
    assert "deploy" in response.json()["detail"]
    assert RegisteredModel.objects.filter(name="m").exists()
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert Deployment.objects.filter(model=model).count() == 1


def test_delete_model_whose_deployments_are_rolled_back(api, make_model, make_version):
    """Only an active deployment blocks the deletion; the history goes with the model."""
    model = make_model(name="m")
    make_version(model, "v1")
    deployment = deployed(api, "m", "v1")
    assert api.post(f"/deployments/{deployment['id']}/rollback", {"reason": "r"}, format="json").status_code == 200

    response = api.delete("/models/m")

    assert response.status_code == 204
    assert not RegisteredModel.objects.filter(pk=model.pk).exists()
    assert not ModelVersion.objects.filter(model_id=model.pk).exists()
    assert not Deployment.objects.filter(model_id=model.pk).exists()


def test_delete_unknown_model_is_404(api):
    assert api.delete("/models/nope").status_code == 404
