"""A 404 says what is missing in the registry's words ("Model 'x' not found", "Version 'v9' of model 'x'
not found"), never a class name from the framework ("No RegisteredModel matches the given query")."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import deploy

pytestmark = pytest.mark.django_db

MODEL_MISSING = "Model 'ghost' not found."
VERSION_MISSING = "Version 'v9' of model 'resnet' not found."
BODY = {"version": "v1", "format": "onnx"}  # a valid body where one is needed: the 404 is the question


def call(api, method: str, path: str):
    if method == "get":
        return api.get(path)
    return getattr(api, method)(path, BODY if method == "post" else {}, format="json")


def assert_404(response, message: str) -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    assert response.json()["detail"] == message
    assert "matches the given query" not in response.content.decode()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/models/ghost"),
        ("patch", "/models/ghost"),
        ("delete", "/models/ghost"),
        ("get", "/models/ghost/versions"),
        ("post", "/models/ghost/versions"),
        ("get", "/models/ghost/versions/v1"),
        ("get", "/models/ghost/versions/default"),
        ("get", "/models/ghost/versions/latest"),
        ("get", "/models/ghost/versions/v1/file"),
        ("post", "/models/ghost/versions/v1/default"),
    ],
)
def test_an_unknown_model_is_named(api, method, path):
    assert_404(call(api, method, path), MODEL_MISSING)


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/models/resnet/versions/v9"),
        ("patch", "/models/resnet/versions/v9"),
        ("delete", "/models/resnet/versions/v9"),
        ("get", "/models/resnet/versions/v9/file"),
        ("put", "/models/resnet/versions/v9/file"),
        ("post", "/models/resnet/versions/v9/default"),
    ],
)
def test_an_unknown_version_is_named_with_its_model(api, make_model, method, path):
    make_model(name="resnet")
    assert_404(call(api, method, path), VERSION_MISSING)


def test_deploy_names_what_is_missing(api, make_model):
    make_model(name="resnet")
    assert_404(deploy(api, "ghost", "v1"), MODEL_MISSING)
    assert_404(deploy(api, "resnet", "v9"), VERSION_MISSING)


def test_an_unknown_deployment_is_named(api):
    assert_404(api.get("/deployments/999"), "Deployment 999 not found.")
    assert_404(api.post("/deployments/999/rollback", {}, format="json"), "Deployment 999 not found.")


def test_other_lookups_never_name_a_class(api):
    response = api.get("/audit/999")
    assert response.status_code == 404
    assert response.json()["detail"] == "Not found."


def test_commands_use_the_same_words(make_model):
    make_model(name="resnet")
    with pytest.raises(CommandError, match=f"^{MODEL_MISSING}$"):
        call_command("set_default", "ghost", "v1")
    with pytest.raises(CommandError, match=f"^{VERSION_MISSING}$"):
        call_command("deploy", "resnet", "v9", "staging")
