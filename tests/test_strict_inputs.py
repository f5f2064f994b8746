"""Values are taken as given or refused, never quietly changed: text must be text, with no control
characters and no whitespace trimmed off; an empty form field is refused rather than read as null or as
"not given"; names, versions and targets cannot start with a dash (a command would read it as an
option). Every refusal is a 400 naming the field, and writes nothing."""

from __future__ import annotations

import pytest

from deployments_app.models import Deployment
from models_app import services
from models_app.models import ModelVersion, RegisteredModel
from registry_site.errors import InvalidInput
from tests.conftest import deploy, registry_state

pytestmark = pytest.mark.django_db


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content)
    assert field in response.json()["errors"], response.json()
    assert field in response.json()["detail"]


@pytest.mark.parametrize("version", ["1.0\n", " 1.0", "1.0 ", "1.0\t", "1.0\r\n", "v\x1b[31m1", "v1\x85"])
@pytest.mark.parametrize("encoding", ["json", "multipart"])
def test_a_version_with_whitespace_or_control_characters_is_refused(api, make_model, storage_dir, version, encoding):
    model = make_model()
    before = registry_state(storage_dir)
    response = api.post(f"/models/{model.name}/versions", {"version": version, "format": "onnx"}, format=encoding)
    assert_refused(response, "version")
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("name", [123, 1.5, True, ["m"], {"n": "m"}])
def test_a_name_that_is_not_text_is_refused(api, name):
    response = api.post("/models", {"name": name, "model_type": "audio"}, format="json")
    assert_refused(response, "name")
    assert "Must be text" in response.json()["errors"]["name"][0]
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [("description", 5), ("description", "bell\x07"), ("release_notes", False), ("release_notes", "esc\x1b[0m")],
)
def test_free_text_must_be_text_without_control_characters(api, make_model, field, value):
    model = make_model()
    if field == "description":
        response = api.patch(f"/models/{model.name}", {field: value}, format="json")
    else:
        response = api.post(
            f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", field: value}, format="json"
        )
    assert_refused(response, field)


def test_free_text_keeps_its_line_breaks_and_tabs(api, make_model):
    model = make_model()
    notes = "  Fixed:\n\t- the thing\r\n"
    response = api.post(
        f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", "release_notes": notes}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert ModelVersion.objects.get().release_notes == notes


@pytest.mark.parametrize("field", ["accuracy", "input_shape", "training_config", "sha256", "is_default", "status"])
def test_an_empty_form_field_is_refused_not_read_as_null(api, make_model, storage_dir, field):
    model = make_model()
    before = registry_state(storage_dir)
    response = api.post(
        f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", field: ""}, format="multipart"
    )
    assert_refused(response, field)
    assert "leave the field out" in response.json()["errors"][field][0]
    assert registry_state(storage_dir) == before


def test_an_empty_form_field_does_not_clear_a_metric(api, make_version):
    version = make_version(accuracy="0.9")
    response = api.patch(
        f"/models/{version.model.name}/versions/{version.version}", {"accuracy": ""}, format="multipart"
    )
    assert_refused(response, "accuracy")
    version.refresh_from_db()
    assert version.accuracy == 0.9


def test_empty_text_is_still_text(api, make_model):
    """Text fields that may be blank take an empty form field as the empty text."""
    model = make_model(description="old")
    response = api.patch(f"/models/{model.name}", {"description": ""}, format="multipart")
    assert response.status_code == 200, response.json()
    assert RegisteredModel.objects.get().description == ""


@pytest.mark.parametrize("name", ["-dash", "--version", "-"])
def test_a_model_name_cannot_start_with_a_dash(api, name):
    assert_refused(api.post("/models", {"name": name, "model_type": "audio"}, format="json"), "name")
    with pytest.raises(InvalidInput, match="name"):
        services.create_model(name=name, model_type="audio")
    assert not RegisteredModel.objects.exists()


def test_a_version_cannot_start_with_a_dash_but_may_hold_one(api, make_model):
    model = make_model()
    response = api.post(f"/models/{model.name}/versions", {"version": "-v1", "format": "onnx"}, format="json")
    assert_refused(response, "version")
    response = api.post(f"/models/{model.name}/versions", {"version": "v1-rc.1", "format": "onnx"}, format="json")
    assert response.status_code == 201, response.json()


def test_a_deploy_body_is_strict_too(api, make_version):
    version = make_version()
    assert_refused(deploy(api, version.model, "v1", "-prod"), "deployment_target")
    assert_refused(deploy(api, version.model, "v1\n"), "version")
    assert_refused(deploy(api, version.model, "v1", "staging", deployed_by=42), "deployed_by")
    response = api.post(
        "/deploy",
        {"model_name": 7, "version": "v1", "deployment_target": "staging", "deployed_by": "ci"},
        format="json",
    )
    assert_refused(response, "model_name")
    assert not Deployment.objects.exists()
