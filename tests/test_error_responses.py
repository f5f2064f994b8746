"""Every error the API answers is JSON, including the ones no view planned for: a bug that raises, a Host
header the registry does not serve. Only the admin keeps Django's HTML error pages."""

from __future__ import annotations

import pytest
from django.test import Client

from models_app import services
from registry_site import middleware


@pytest.fixture
def server_client() -> Client:
    """A client that gets the server's answer to an exception, as a real client would, instead of
    having the exception raised into the test."""
    return Client(raise_request_exception=False, HTTP_HOST="localhost")


def _assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert body["detail"]
    return body


@pytest.mark.django_db
def test_an_unhandled_exception_in_a_view_is_a_json_500(server_client, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("a bug in the service")

    monkeypatch.setattr(services, "create_model", broken)

    response = server_client.post("/models", {"name": "m", "model_type": "audio"}, content_type="application/json")

    body = _assert_json_error(response, 500)
    assert "a bug in the service" not in body["detail"]  # the details are for the log, not the client
    assert any(record.exc_info and "a bug in the service" in str(record.exc_info[1]) for record in caplog.records)


@pytest.mark.django_db
def test_an_unhandled_exception_before_any_view_is_a_json_500(server_client, monkeypatch):
    def broken(content_type, length):
        raise RuntimeError("a bug in a middleware")

    monkeypatch.setattr(middleware, "body_over_limit", broken)

    _assert_json_error(server_client.get("/models"), 500)


@pytest.mark.django_db
def test_the_admin_keeps_its_html_error_pages(server_client):
    response = server_client.get("/admin/no-such-page/")

    assert response.status_code in (302, 404)  # the login page first, or the admin's own 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
def test_an_unknown_host_is_a_json_400_in_local_mode(settings, server_client):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 calls the local registry
    with `Host: evil.example`. Local mode answers only to loopback names (and REGISTRY_ALLOWED_HOSTS)."""
    assert settings.LOCAL_MODE
    for host in ("evil.example", "evil.example:8003", "localhost.evil.example", "127.0.0.1.nip.io"):
        response = server_client.delete("/models/resnet", HTTP_HOST=host)
        body = _assert_json_error(response, 400)
        assert "Host" in body["detail"], host
    for host in ("localhost", "localhost:8003", "127.0.0.1:8003", "[::1]:8003"):
        assert server_client.get("/models", HTTP_HOST=host).status_code == 200, host
