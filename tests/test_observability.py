"""Operations (issue #13 §4): request ids, one log line per request, Prometheus metrics, readiness."""

from __future__ import annotations

import json
import logging
import re

import pytest
import requests
from django.db.migrations.recorder import MigrationRecorder
from prometheus_client.parser import text_string_to_metric_families

from registry_site import health
from tests.conftest import token_client, upload, user_with_role
from tests.live import running_registry


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(api) -> str:
    response = api.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


# Request ids -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_response_carries_a_request_id(api):
    first = api.get("/models")["X-Request-ID"]
    second = api.get("/models")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


@pytest.mark.django_db
def test_the_clients_request_id_is_kept_when_sane_and_replaced_when_not(api):
    assert api.get("/models", HTTP_X_REQUEST_ID="ci-run-42/step:3")["X-Request-ID"] == "ci-run-42/step:3"
    for hostile in ("has spaces", "x" * 65, "line\nbreak", ""):
        assert re.fullmatch(r"[0-9a-f]{32}", api.get("/models", HTTP_X_REQUEST_ID=hostile)["X-Request-ID"])


@pytest.mark.django_db
def test_the_audit_event_names_the_request_that_caused_it(api):
    created = api.post(
        "/models", {"name": "traced", "model_type": "classification"}, format="json", HTTP_X_REQUEST_ID="pipeline-7"
    )
    assert created.status_code == 201
    events = api.get("/audit", {"request_id": "pipeline-7"}).json()["results"]
    assert [(event["action"], event["object_repr"], event["request_id"]) for event in events] == [
        ("create", "traced", "pipeline-7")
    ]


# The request log ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_log_record_per_request_with_what_an_operator_needs(api, caplog, make_model):
    make_model(name="m")
    with caplog.at_level(logging.INFO, logger="registry.request"):
        response = api.post(
            "/models/m/versions",
            {"version": "v1", "format": "onnx", "file": upload(b"x" * 1000)},
            format="multipart",
            HTTP_X_REQUEST_ID="upload-1",
        )
    assert response.status_code == 201
    [record] = [r for r in caplog.records if r.name == "registry.request"]
    assert (record.method, record.route, record.status, record.request_id) == ("POST", "version-list", 201, "upload-1")
    assert record.path == "/models/m/versions" and record.user == "anonymous" and record.client == "127.0.0.1"
    assert record.bytes_in > 1000 and record.duration_ms > 0


# Metrics -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_count_requests_per_route_and_status(api):
    before = scrape(api)
    for _ in range(3):
        api.get("/models")
    api.get("/models/nope")
    after = scrape(api)
    count = "registry_http_request_duration_seconds_count"
    ok = {"method": "GET", "route": "model-list", "status": "200"}
    missing = {"method": "GET", "route": "model-detail", "status": "404"}
    assert value(after, count, **ok) - value(before, count, **ok) == 3
    assert value(after, count, **missing) - value(before, count, **missing) == 1


@pytest.mark.django_db
def test_metrics_count_file_bytes_in_and_out(api, make_model):
    make_model(name="m")
    before = scrape(api)
    data = b"m" * 5000
    created = api.post(
        "/models/m/versions", {"version": "v1", "format": "onnx", "file": upload(data)}, format="multipart"
    )
    assert created.status_code == 201
    download = api.get("/models/m/versions/v1/file")
    # The test client closes a streamed response once it is read, as a server does: that is when it counts.
    assert b"".join(download.streaming_content) == data
    ranged = api.get("/models/m/versions/v1/file", HTTP_RANGE="bytes=0-99")
    assert ranged.status_code == 206
    assert len(b"".join(ranged.streaming_content)) == 100
    after = scrape(api)
    uploaded = value(after, "registry_upload_bytes_total") - value(before, "registry_upload_bytes_total")
    assert 5000 < uploaded < 6000  # the file and its multipart envelope
    assert value(after, "registry_download_bytes_total") - value(before, "registry_download_bytes_total") == 5100


@pytest.mark.django_db
def test_metrics_report_the_registrys_contents(world, api):
    text = scrape(api)
    assert value(text, "registry_models") == 2  # resnet, spare
    assert value(text, "registry_versions") == 3  # v3 has no file
    assert value(text, "registry_stored_files") == 2
    assert value(text, "registry_stored_bytes") == len(b"one") + len(b"two")
    assert value(text, "registry_deployments", status="active") == 1
    assert value(text, "registry_deployments", status="rolled_back") == 0


@pytest.mark.django_db
def test_production_metrics_need_a_token_and_count_refusals(production, api, settings):
    assert api.get("/metrics").status_code == 401
    assert api.get("/models", HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 401
    reader = token_client(user_with_role("watcher", "viewer"))
    text = reader.get("/metrics").content.decode()
    assert value(text, "registry_auth_failures_total") >= 2
    settings.REGISTRY_METRICS_PUBLIC = True
    assert api.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_count_throttled_requests_per_route(production, api, make_model):
    make_model(name="resnet")
    production.REGISTRY_THROTTLE_WRITES = "2/min"
    editor = token_client(user_with_role("busy", "editor"))
    before = value(editor.get("/metrics").content.decode(), "registry_throttled_requests_total", route="model-detail")
    statuses = [editor.patch("/models/resnet", {"description": str(n)}, format="json").status_code for n in range(4)]
    assert statuses == [200, 200, 429, 429]
    after = value(editor.get("/metrics").content.decode(), "registry_throttled_requests_total", route="model-detail")
    assert after - before == 2


# Readiness ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_when_database_storage_and_migrations_are(api):
    assert api.get("/ready").json() == {"status": "ready", "database": "ok", "storage": "ok", "migrations": "ok"}


@pytest.mark.django_db
def test_not_ready_while_a_migration_is_unapplied(api, monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)
    latest = MigrationRecorder.Migration.objects.filter(app="registry_site").order_by("-id").first()
    latest.delete()  # as if the new release's migration had not run yet (rolled back with the test)
    response = api.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["database"] == "ok"
    assert f"registry_site.{latest.name}" in body["migrations"] and "manage.py migrate" in body["migrations"]
    assert api.get("/health").status_code == 200  # alive all the same: a restart would not help


# Under gunicorn, for real ------------------------------------------------------------------------------


@pytest.mark.gunicorn
def test_gunicorn_workers_metrics_add_up_and_logs_are_json_lines(tmp_path):
    with running_registry(tmp_path, workers=2, extra_env={"REGISTRY_LOG_FORMAT": "json"}) as base:
        for _ in range(40):  # a new connection each time: spread over both workers
            assert requests.get(f"{base}/models", headers={"X-Request-ID": "probe"}).status_code == 200
        # Each scrape lands on either worker; each must report both workers' requests.
        scrapes = [requests.get(f"{base}/metrics").text for _ in range(6)]
    counts = {
        value(text, "registry_http_request_duration_seconds_count", method="GET", route="model-list", status="200")
        for text in scrapes
    }
    assert counts == {40}
    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.startswith("{")]
    probes = [line for line in lines if line.get("logger") == "registry.request" and line["request_id"] == "probe"]
    assert len(probes) == 40
    assert {line["route"] for line in probes} == {"model-list"} and {line["status"] for line in probes} == {200}
    assert {"time", "level", "method", "path", "duration_ms", "user", "client", "bytes_out"} <= set(probes[0])
