"""Which web pages may call the registry. A local registry has no tokens, so any page the developer opens
could otherwise wipe it: CORS answers only loopback origins (and REGISTRY_CORS_ORIGINS), a write sent by a
page of any other origin is refused before a view runs, and JSON endpoints refuse the form and text bodies
a page can send without a preflight."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from deployments_app.models import Deployment
from models_app.models import RegisteredModel
from registry_site import settings as registry_settings
from tests.conftest import production_mode, registry_state, token_client, upload, user_with_role

pytestmark = pytest.mark.django_db

EVIL = "https://evil.example"
LOOPBACK_ORIGINS = ["http://localhost:3000", "http://localhost", "http://127.0.0.1:5173", "http://[::1]:8080"]
LOOKALIKES = [
    EVIL,
    "null",  # sandboxed frames, file:// pages
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example:3000",
    "http://evil.example#http://localhost:3000",
    "https://localhost:3000",  # not a page served by a local development server over plain HTTP
    "http://localhost:3000/",
]


def preflight(api: APIClient, path: str, origin: str, method: str):
    return api.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )


@pytest.mark.parametrize("origin", LOOKALIKES)
@pytest.mark.parametrize("method", ["DELETE", "PATCH", "POST", "PUT"])
def test_a_preflight_from_another_origin_allows_nothing(api, world, origin, method):
    response = preflight(api, "/models/resnet", origin, method)

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response
    assert "Access-Control-Allow-Headers" not in response


@pytest.mark.parametrize("origin", LOOKALIKES)
def test_a_page_of_another_origin_can_read_nothing(api, world, origin):
    response = api.get("/models", HTTP_ORIGIN=origin)

    assert response.status_code == 200  # the browser withholds it from the page: no CORS header
    assert "Access-Control-Allow-Origin" not in response
    assert "origin" in response["Vary"].lower()


def test_a_delete_sent_by_another_origins_page_is_refused(api, world, storage_dir):
    """The issue's finding: DELETE from Origin: https://evil.example was a 204 in local mode."""
    before = registry_state(storage_dir)

    response = api.delete("/models/spare", HTTP_ORIGIN=EVIL)

    assert response.status_code == 403
    assert "evil.example" in response.json()["detail"]
    assert "Access-Control-Allow-Origin" not in response
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("origin", LOOKALIKES)
def test_simple_requests_from_another_origins_page_change_nothing(api, world, storage_dir, origin):
    """Form posts need no preflight: a page can send them anywhere. Refused whatever their type."""
    before = registry_state(storage_dir)
    form = {"version": "v9", "format": "onnx", "file": upload(b"nine")}

    assert api.post("/models/resnet/versions", form, format="multipart", HTTP_ORIGIN=origin).status_code == 403
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = api.post("/models", "name=evil&model_type=audio", content_type=content_type, HTTP_ORIGIN=origin)
        assert response.status_code == 403, content_type
    assert api.post("/deployments/1/rollback", {}, format="json", HTTP_ORIGIN=origin).status_code == 403
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("origin", LOOPBACK_ORIGINS)
def test_pages_served_on_this_machine_may_call_a_local_registry(api, world, origin):
    """The seed's JavaScript example, served by a development server on localhost."""
    response = preflight(api, "/models/spare", origin, "DELETE")
    assert response["Access-Control-Allow-Origin"] == origin
    assert "DELETE" in response["Access-Control-Allow-Methods"]
    assert "content-type" in response["Access-Control-Allow-Headers"]

    form = {"version": "v9", "format": "onnx", "file": upload(b"nine")}
    created = api.post("/models/resnet/versions", form, format="multipart", HTTP_ORIGIN=origin)
    assert created.status_code == 201, created.json()
    assert created["Access-Control-Allow-Origin"] == origin
    assert "ETag" in created["Access-Control-Expose-Headers"]
    assert api.delete("/models/spare", HTTP_ORIGIN=origin).status_code == 204


def test_the_registrys_own_pages_may_write(api, world):
    """Same origin (the docs page's "Try it out", the admin): not a cross-origin request at all."""
    response = api.delete("/models/spare", HTTP_ORIGIN="http://registry.test:8003", HTTP_HOST="registry.test:8003")
    assert response.status_code == 400  # only because registry.test is not an allowed host here

    response = api.delete("/models/spare", HTTP_ORIGIN="http://localhost:8003", HTTP_HOST="localhost:8003")
    assert response.status_code == 204


def test_configured_origins_are_allowed_too(api, world, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://dashboard.example.com"]

    response = preflight(api, "/models/spare", "https://dashboard.example.com", "DELETE")
    assert response["Access-Control-Allow-Origin"] == "https://dashboard.example.com"
    assert api.delete("/models/spare", HTTP_ORIGIN="https://dashboard.example.com").status_code == 204
    assert api.delete("/models/resnet", HTTP_ORIGIN=EVIL).status_code == 403


def test_production_answers_only_its_configured_origins(world, settings):
    production_mode(settings, CORS_ALLOWED_ORIGIN_REGEXES=[], CORS_ALLOWED_ORIGINS=["https://ml.example.com"])
    editor = token_client(user_with_role("editor-user", "editor"))

    assert "Access-Control-Allow-Origin" not in preflight(editor, "/models", "http://localhost:3000", "POST")
    assert editor.delete("/models/spare", HTTP_ORIGIN="http://localhost:3000").status_code == 403
    assert editor.delete("/models/spare", HTTP_ORIGIN=EVIL).status_code == 403
    assert RegisteredModel.objects.filter(name="spare").exists()
    assert editor.delete("/models/spare", HTTP_ORIGIN="https://ml.example.com").status_code == 204
    assert editor.delete("/models/spare").status_code == 404  # a script sends no Origin


# --- Bodies a page can send without a preflight ------------------------------------------------------
JSON_WRITES = [
    ("post", "/models", "name=formed&model_type=audio"),
    ("patch", "/models/resnet", "description=changed"),
    ("patch", "/models/resnet/versions/v1", "release_notes=changed"),
    ("post", "/models/resnet/versions", "version=v9&format=onnx"),
    ("post", "/deploy", "model_name=resnet&version=v2&deployment_target=staging"),
    ("post", "/deployments/{staging}/rollback", "reason=because"),
]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
@pytest.mark.parametrize("method, path, body", JSON_WRITES)
def test_json_endpoints_refuse_form_and_text_bodies_with_415(api, world, storage_dir, method, path, body, content_type):
    before = registry_state(storage_dir)
    path = path.format(staging=world.staging.pk)

    response = getattr(api, method)(path, body, content_type=content_type)

    assert response.status_code == 415, response.content[:300]
    assert content_type in response.json()["detail"]
    assert registry_state(storage_dir) == before


def test_the_seeds_json_and_multipart_bodies_still_work(api, world):
    created = api.post("/models", {"name": "formed", "model_type": "audio"}, format="json")
    assert created.status_code == 201
    form = {"version": "v9", "format": "onnx", "accuracy": "0.9", "file": upload(b"nine")}
    assert api.post("/models/resnet/versions", form, format="multipart").status_code == 201
    body = {"model_name": "resnet", "version": "v9", "deployment_target": "staging"}
    assert api.post("/deploy", body, format="json").status_code == 201
    assert Deployment.objects.filter(model_version__version="v9").exists()


# --- Settings -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value", ["*", "evil.example", "https://app.example.com/", "https://app.example.com/path", "ftp://x.example"]
)
def test_a_malformed_cors_origin_stops_the_server(monkeypatch, value):
    monkeypatch.setenv("REGISTRY_CORS_ORIGINS", f"http://localhost:3000,{value}")
    with pytest.raises(ImproperlyConfigured, match="REGISTRY_CORS_ORIGINS"):
        registry_settings.cors_origins("REGISTRY_CORS_ORIGINS")


def test_local_mode_allows_loopback_origins_only():
    patterns = registry_settings.LOOPBACK_ORIGIN_REGEXES
    for origin in LOOPBACK_ORIGINS:
        assert any(re.match(p, origin) for p in patterns), origin
    for origin in LOOKALIKES:
        assert not any(re.match(p, origin) for p in patterns), origin
