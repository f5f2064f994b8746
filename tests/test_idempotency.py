"""Safe retries (issue #10 §2). Re-sending a version with the same file and the same metadata answers 200
with the registered version and changes nothing (models_app.services.register_version); any POST sent
with an Idempotency-Key gets its first successful answer again on a retry (registry_site.idempotency).
On SQLite and PostgreSQL; the races with the same key in flight need PostgreSQL's locks."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from deployments_app.models import Deployment
from models_app import services
from models_app.models import ModelVersion, RegisteredModel
from models_app.uploads import HashedUpload
from registry_site.idempotency import HEADER, IdempotentPostsMixin, _form_value
from registry_site.models import AuditEvent, IdempotencyKey
from tests.conftest import production_mode, registry_state, sha256, staged_files, stored_files, upload, user_with_role
from tests.live import all_at_once
from tests.test_seed_examples import curl_block

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="needs PostgreSQL's locks (two transactions at once)"
)


def post_version(api, model: str, fields: dict, data: bytes | None = None, *, encoding="multipart", **extra):
    body = dict(fields)
    if data is not None:
        body["file"] = upload(data)
    return api.post(f"/models/{model}/versions", body, format=encoding, **extra)


def keyed(key: str) -> dict:
    return {"HTTP_IDEMPOTENCY_KEY": key}


# --- Idempotent registration ---------------------------------------------------------------------------
def test_the_seed_multipart_example_sent_again_verbatim_is_200_with_the_registered_version(
    api, make_model, storage_dir
):
    """The seed's `curl -F ...` of "Create Model Version", field for field, twice."""
    make_model(name="image_classifier")
    fields = dict(re.findall(r'-F "([^"=]+)=([^"]*)"', curl_block("Create Model Version")))
    assert fields.pop("file") == "@model.zip" and set(fields) >= {"version", "format", "accuracy", "input_shape"}
    model_zip = b"PK\x03\x04 seed model archive " * 1000

    def send():
        return api.post(
            "/models/image_classifier/versions", {**fields, "file": upload(model_zip, "model.zip")}, format="multipart"
        )

    first = send()
    assert first.status_code == 201, first.json()
    before = registry_state(storage_dir)

    again = send()
    assert again.status_code == 200, again.json()
    assert again.json() == first.json()
    assert again.json()["checksum"] == sha256(model_zip)
    assert registry_state(storage_dir) == before  # no row, no audit event, no stored or staged file
    assert staged_files(storage_dir) == []


@pytest.mark.parametrize("encoding", ["multipart", "json"])
def test_the_same_version_sent_again_changes_nothing(api, make_model, storage_dir, encoding):
    model = make_model()
    fields = {
        "version": "v1",
        "format": "onnx",
        "accuracy": "0.9" if encoding == "multipart" else 0.9,
        "release_notes": "first",
        "training_config": json.dumps({"lr": 0.1, "epochs": 3})
        if encoding == "multipart"
        else {"lr": 0.1, "epochs": 3},
    }
    data = b"weights" if encoding == "multipart" else None
    first = post_version(api, model.name, fields, data, encoding=encoding)
    assert first.status_code == 201, first.json()
    before = registry_state(storage_dir)
    events = AuditEvent.objects.count()

    again = post_version(api, model.name, fields, data, encoding=encoding)

    assert again.status_code == 200, again.json()
    assert again.json() == first.json()
    assert "Location" not in again
    assert AuditEvent.objects.count() == events  # the decision: a re-send is not an event
    assert registry_state(storage_dir) == before


def test_values_are_compared_as_the_rules_clean_them(api, make_model, storage_dir):
    """A form's text and a JSON body's typed values are the same values; a JSON object's key order is not
    content."""
    model = make_model()
    first = post_version(
        api,
        model.name,
        {
            "version": "v1",
            "format": "onnx",
            "accuracy": "0.950",
            "input_shape": "[1, 3, 224, 224]",
            "training_config": '{"a": 1, "b": [1, 2]}',
        },
    )
    assert first.status_code == 201, first.json()
    again = post_version(
        api,
        model.name,
        {
            "version": "v1",
            "format": "onnx",
            "accuracy": 0.95,
            "input_shape": [1, 3, 224, 224],
            "training_config": {"b": [1, 2], "a": 1},
        },
        encoding="json",
    )
    assert again.status_code == 200, again.json()


def test_other_content_is_a_409_naming_every_field_that_differs(api, make_model, storage_dir):
    model = make_model()
    assert (
        post_version(api, model.name, {"version": "v1", "format": "onnx", "accuracy": "0.9"}, b"one").status_code == 201
    )
    before = registry_state(storage_dir)

    response = post_version(
        api, model.name, {"version": "v1", "format": "tflite", "accuracy": "0.8", "recall": "0.5"}, b"two"
    )

    assert response.status_code == 409, response.json()
    body = response.json()
    assert set(body["errors"]) == {"version", "format", "accuracy", "recall", "file"}
    for field in ("format", "accuracy", "recall", "file"):
        assert f"{field}: registered" in body["detail"]
    assert "already exists" in body["detail"]
    assert sha256(b"one") in body["errors"]["file"][0] and sha256(b"two") in body["errors"]["file"][0]
    assert body["errors"]["accuracy"] == ["registered as 0.9, sent 0.8"]
    assert body["errors"]["recall"] == ["registered as null, sent 0.5"]
    assert registry_state(storage_dir) == before  # the other file was not stored, nor left staged


def test_only_the_fields_a_request_states_are_compared(api, make_model, storage_dir):
    """What a request leaves out may hold anything (its default, or a value set later by PATCH); what it
    states must be what is registered."""
    model = make_model()
    sent = {"version": "v1", "format": "onnx", "release_notes": "first"}
    assert post_version(api, model.name, sent, b"one").status_code == 201
    assert (
        api.patch(
            f"/models/{model.name}/versions/v1", {"release_notes": "edited", "accuracy": 0.7}, format="json"
        ).status_code
        == 200
    )

    without_notes = post_version(api, model.name, {"version": "v1", "format": "onnx"}, b"one")
    assert without_notes.status_code == 200 and without_notes.json()["release_notes"] == "edited"
    # The first request exactly: its notes are no longer what is registered.
    resent = post_version(api, model.name, sent, b"one")
    assert resent.status_code == 409 and list(resent.json()["errors"]) == ["version", "release_notes"]
    # A JSON body carries no file, so the registered file is not compared: the two-step push (register
    # as JSON, then PUT the file) can be re-run.
    as_json = post_version(api, model.name, {"version": "v1", "format": "onnx"}, encoding="json")
    assert as_json.status_code == 200 and as_json.json()["checksum"] == sha256(b"one")


@pytest.mark.parametrize("encoding", ["multipart", "json"])
def test_named_metrics_and_tags_are_content_by_the_names_stated(api, make_model, storage_dir, encoding):
    """The open metadata (issue #9) counts like the columns: the same names with the same values are a
    retry, a name added later by PATCH does not make a retry differ, another value is a 409 naming it."""
    model = make_model()
    metrics, tags = {"auc": 0.91, "loss": 0.2}, {"team": "vision"}
    if encoding == "multipart":
        metrics, tags = json.dumps(metrics), json.dumps(tags)
    sent = {"version": "v1", "format": "onnx", "metrics": metrics, "tags": tags}
    assert post_version(api, model.name, sent, encoding=encoding).status_code == 201
    patched = api.patch(f"/models/{model.name}/versions/v1", {"metrics": {"f2": 0.5}}, format="json")
    assert patched.status_code == 200, patched.json()
    before = registry_state(storage_dir)

    again = post_version(api, model.name, sent, encoding=encoding)
    assert again.status_code == 200, again.json()
    assert again.json()["metrics"] == {"auc": 0.91, "f2": 0.5, "loss": 0.2}

    other = dict(sent, metrics={"auc": 0.95} if encoding == "json" else json.dumps({"auc": 0.95}))
    refused = post_version(api, model.name, other, encoding=encoding)
    assert refused.status_code == 409, refused.json()
    assert set(refused.json()["errors"]) == {"version", "metrics"}
    assert "0.91" in refused.json()["errors"]["metrics"][0] and "0.95" in refused.json()["errors"]["metrics"][0]
    other_tag = dict(sent, tags={"team": "audio"} if encoding == "json" else json.dumps({"team": "audio"}))
    assert set(post_version(api, model.name, other_tag, encoding=encoding).json()["errors"]) == {"version", "tags"}
    assert registry_state(storage_dir) == before


def test_status_and_is_default_are_lifecycle_not_content(api, make_model, storage_dir):
    """A version moves on after it is registered (approved, another default): the registration sent again
    neither conflicts with that nor undoes it."""
    model = make_model()
    assert post_version(api, model.name, {"version": "v1", "format": "onnx"}, b"one").status_code == 201
    v2 = {"version": "v2", "format": "onnx", "status": "testing", "is_default": "true"}
    assert post_version(api, model.name, v2, b"two").json()["is_default"] is True
    assert api.post(f"/models/{model.name}/versions/v1/default").status_code == 200
    assert api.patch(f"/models/{model.name}/versions/v2", {"status": "approved"}, format="json").status_code == 200
    before = registry_state(storage_dir)

    again = post_version(api, model.name, v2, b"two")

    assert again.status_code == 200, again.json()
    assert again.json()["status"] == "approved" and again.json()["is_default"] is False
    assert registry_state(storage_dir) == before


def test_a_file_for_a_version_registered_without_one_is_a_409_that_says_how_to_attach_it(api, make_model, storage_dir):
    model = make_model()
    assert post_version(api, model.name, {"version": "v1", "format": "onnx"}).status_code == 201
    before = registry_state(storage_dir)
    response = post_version(api, model.name, {"version": "v1", "format": "onnx"}, b"late")
    assert response.status_code == 409
    assert "PUT .../versions/v1/file" in response.json()["errors"]["file"][0]
    assert registry_state(storage_dir) == before


def test_a_wrong_declared_sha256_is_still_a_400_when_the_version_exists(api, make_model, storage_dir):
    model = make_model()
    assert post_version(api, model.name, {"version": "v1", "format": "onnx"}, b"one").status_code == 201
    response = post_version(api, model.name, {"version": "v1", "format": "onnx", "sha256": "0" * 64}, b"one")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["sha256"]
    assert staged_files(storage_dir) == []


@pytest.mark.django_db
def test_the_service_says_whether_it_registered(make_model, storage_dir):
    model = make_model()
    first = services.register_version(model=model, version="v1", format="onnx", accuracy=0.5)
    again = services.register_version(model=model, version="v1", format="onnx", accuracy=0.5)
    assert (first.created, again.created) == (True, False)
    assert again.version.pk == first.version.pk
    assert AuditEvent.objects.filter(action="create", object_type="version").count() == 1


@pytest.mark.django_db
def test_the_register_version_command_run_again_changes_nothing(make_model, tmp_path, storage_dir):
    model = make_model()
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"command weights")
    args = ("register_version", model.name, "v1", "--format", "onnx", "--file", str(weights), "--accuracy", "0.9")
    call_command(*args, stdout=StringIO())
    files = stored_files(storage_dir)
    out = StringIO()
    call_command(*args, stdout=out)
    assert out.getvalue().startswith(f"Already registered, unchanged: {model.name}:v1")
    assert stored_files(storage_dir) == files and staged_files(storage_dir) == []
    weights.write_bytes(b"other weights")
    with pytest.raises(CommandError, match="file: registered with sha256"):
        call_command(*args, stdout=StringIO())
    assert ModelVersion.objects.filter(model=model).count() == 1


# --- Idempotency-Key -----------------------------------------------------------------------------------
def _write(name: str, world) -> tuple[str, dict, str]:
    """(path, body, encoding) of one POST of each kind, against the `world` fixture."""
    return {
        "create model": ("/models", {"name": "fresh", "model_type": "audio"}, "json"),
        "register version (json)": ("/models/resnet/versions", {"version": "v9", "format": "onnx"}, "json"),
        "register version (form)": (
            "/models/resnet/versions",
            {"version": "v9", "format": "onnx", "accuracy": "0.9"},
            "multipart",
        ),
        "set default": ("/models/resnet/versions/v2/default", None, "json"),
        "deploy": ("/deploy", {"model_name": "resnet", "version": "v2", "deployment_target": "staging"}, "json"),
        "rollback": (f"/deployments/{world.staging.pk}/rollback", {"reason": "bad"}, "json"),
    }[name]


WRITES = ["create model", "register version (json)", "register version (form)", "set default", "deploy", "rollback"]


def _send(api, path: str, body: dict | None, encoding: str, key: str | None = None):
    extra = keyed(key) if key is not None else {}
    if encoding == "multipart" and body is not None:
        body = {**body, "file": upload(b"keyed weights")}
    return api.post(path, body, format=encoding, **extra)


@pytest.mark.parametrize("name", WRITES)
def test_a_retry_with_the_same_key_gets_the_first_answer_and_changes_nothing(api, world, storage_dir, name):
    path, body, encoding = _write(name, world)
    first = _send(api, path, body, encoding, key="retry-1")
    assert 200 <= first.status_code < 300, first.content
    assert "Idempotent-Replayed" not in first
    before = registry_state(storage_dir)

    again = _send(api, path, body, encoding, key="retry-1")

    assert again.status_code == first.status_code
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again.get("Location") == first.get("Location")
    assert again["Idempotent-Replayed"] == "true"
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("name", WRITES)
def test_the_same_key_with_another_body_is_a_422_naming_the_header(api, world, storage_dir, name):
    path, body, encoding = _write(name, world)
    assert 200 <= _send(api, path, body, encoding, key="k").status_code < 300
    before = registry_state(storage_dir)
    other = {**(body or {}), "extra": "x"} if name != "register version (form)" else {**body, "accuracy": "0.8"}

    response = _send(api, path, other, encoding, key="k")

    assert response.status_code == 422, response.content
    assert list(response.json()["errors"]) == [HEADER]
    assert HEADER in response.json()["detail"]
    assert registry_state(storage_dir) == before


def test_another_query_string_is_another_request(api, world):
    assert _send(api, "/models", {"name": "q", "model_type": "audio"}, "json", key="k").status_code == 201
    response = api.post("/models?x=1", {"name": "q", "model_type": "audio"}, format="json", **keyed("k"))
    assert response.status_code == 422


def test_a_json_body_is_the_same_whatever_its_spacing_and_key_order(api, world):
    first = api.generic(
        "POST", "/models", '{"name": "spaced", "model_type": "audio"}', content_type="application/json", **keyed("k")
    )
    again = api.generic(
        "POST",
        "/models",
        '{ "model_type" : "audio",\n "name" : "spaced" }',
        content_type="application/json",
        **keyed("k"),
    )
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "tab\tkey", "caf\u00e9"])
def test_a_malformed_key_is_a_400_naming_the_header(api, world, storage_dir, key):
    before = registry_state(storage_dir)
    response = api.post(
        "/models", {"name": "x", "model_type": "audio"}, format="json", **keyed(key.encode().decode("latin-1"))
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [HEADER]
    assert registry_state(storage_dir) == before


def test_a_refused_request_does_not_spend_its_key(api, world):
    """Only a success is recorded: a refusal changed nothing, so the same key may try again."""
    body = {"model_name": "resnet", "version": "v3", "deployment_target": "staging"}
    assert api.post("/deploy", body, format="json", **keyed("d")).status_code == 409  # v3 has no file
    attached = api.generic("PUT", "/models/resnet/versions/v3/file", b"three", content_type="application/octet-stream")
    assert attached.status_code == 200
    response = api.post("/deploy", body, format="json", **keyed("d"))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_keys_belong_to_their_user_and_to_their_path(world, settings):
    production_mode(settings)
    alice, bob = (user_with_role(name, "editor") for name in ("alice", "bob"))
    clients = {}
    for user in (alice, bob):
        clients[user.username] = APIClient()
        clients[user.username].force_authenticate(user)
    body = {"name": "shared", "model_type": "audio"}
    assert clients["alice"].post("/models", body, format="json", **keyed("same")).status_code == 201
    # Bob's "same" is not Alice's: his request runs (and finds the model Alice made).
    bobs = clients["bob"].post("/models", body, format="json", **keyed("same"))
    assert bobs.status_code == 409 and "Idempotent-Replayed" not in bobs
    # Alice's key on another path is another key.
    other = clients["alice"].post(
        "/models/shared/versions", {"version": "v1", "format": "onnx"}, format="json", **keyed("same")
    )
    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    owners = set(IdempotencyKey.objects.values_list("owner", flat=True))
    assert owners == {f"user:{alice.pk}"}


def test_anonymous_keys_in_local_mode(api, world):
    assert _send(api, "/models", {"name": "anon", "model_type": "audio"}, "json", key="a").status_code == 201
    assert IdempotencyKey.objects.get().owner == "anonymous"


def test_an_expired_key_is_forgotten(api, world, settings):
    body = {"name": "brief", "model_type": "audio"}
    assert _send(api, "/models", body, "json", key="old").status_code == 201
    row = IdempotencyKey.objects.get()
    assert (
        row.expires_at - row.created_at
        == timedelta(hours=settings.REGISTRY_IDEMPOTENCY_KEY_HOURS)
        == timedelta(hours=24)
    )
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    again = _send(api, "/models", body, "json", key="old")
    assert again.status_code == 409 and "Idempotent-Replayed" not in again  # ran again: the model exists


def test_the_answer_is_recorded_in_the_transaction_of_the_change(api, world, monkeypatch):
    """If the answer cannot be recorded, the change does not commit either: never a change whose retry
    would act a second time."""

    def fail(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(IdempotencyKey.objects, "create", fail)
    client = APIClient(raise_request_exception=False)
    response = client.post("/models", {"name": "lost", "model_type": "audio"}, format="json", **keyed("k"))
    assert response.status_code == 500
    assert not RegisteredModel.objects.filter(name="lost").exists()
    assert not AuditEvent.objects.filter(object_repr="lost").exists()


def test_a_form_is_hashed_by_the_digest_computed_while_its_file_streamed_in(monkeypatch):
    def read_again(*args, **kwargs):
        raise AssertionError("the upload was read a second time")

    file = HashedUpload("m.onnx", "application/octet-stream", 5, None)
    file.sha256, file.size = "ab" * 32, 5
    monkeypatch.setattr(HashedUpload, "chunks", read_again)
    monkeypatch.setattr(HashedUpload, "read", property(lambda self: read_again))
    try:
        assert _form_value(file) == {"file": "m.onnx", "size": 5, "sha256": "ab" * 32}
    finally:
        monkeypatch.undo()
        file.close()


def test_the_key_is_ignored_on_other_methods(api, world):
    for _ in range(2):
        response = api.patch("/models/resnet", {"description": "patched"}, format="json", **keyed("p"))
        assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert not IdempotencyKey.objects.exists()


# --- Every POST, and its schema ---------------------------------------------------------------------
def _post_routes():
    for pattern in get_resolver().url_patterns:
        callback = getattr(pattern, "callback", None)
        actions = getattr(callback, "actions", None) or {}
        if "post" in actions:
            yield str(pattern.pattern), callback.cls


def test_every_post_route_honours_the_key():
    routes = list(_post_routes())
    assert len(routes) >= 5
    assert [route for route, cls in routes if not issubclass(cls, IdempotentPostsMixin)] == []


def test_every_post_operation_documents_the_key_the_422_and_the_replayed_header(api):
    schema = api.get("/openapi.json").json()
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert set(posts) >= {
        "/models",
        "/models/{name}/versions",
        "/models/{name}/versions/{version}/default",
        "/deploy",
        "/deployments/{id}/rollback",
    }
    for path, operation in posts.items():
        [parameter] = [p for p in operation.get("parameters", []) if p["in"] == "header" and p["name"] == HEADER]
        assert parameter.get("required", False) is False
        assert parameter["schema"] == {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
        assert "422" in operation["responses"] and "Idempotency-Key" in operation["responses"]["409"]["description"]
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in response["headers"], (path, status)
    assert "200" in posts["/models/{name}/versions"]["responses"]  # the registration sent again


# --- The purge ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_purge_deletes_only_expired_keys(api, world):
    assert _send(api, "/models", {"name": "a", "model_type": "audio"}, "json", key="1").status_code == 201
    assert _send(api, "/models", {"name": "b", "model_type": "audio"}, "json", key="2").status_code == 201
    IdempotencyKey.objects.filter(key="1").update(expires_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert "Deleted 1 expired" in out.getvalue()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["2"]


# --- Two requests with one key at once (PostgreSQL) --------------------------------------------------
def _request(path: str, body: dict, key: str, *, multipart: bool = False):
    """One request through the whole stack on this thread's own database connection."""
    client = Client(raise_request_exception=False, HTTP_HOST="localhost")
    try:
        if multipart:
            return client.post(path, {**body, "file": upload(b"raced weights")}, **keyed(key))
        return client.post(path, body, content_type="application/json", **keyed(key))
    finally:
        connection.close()


def _elsewhere(*args, **kwargs):
    """_request on another thread, so on another connection than the test's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_request, *args, **kwargs).result(30)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@pytest.fixture
def raced(make_model, make_version) -> RegisteredModel:
    model = make_model(name="raced")
    make_version(model, "v1", data=b"one")
    return model


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_second_request_while_the_first_is_in_flight_is_a_409_and_then_gets_its_answer(raced):
    """Deterministic: the first request holds its key and waits on the model's lock (held here); the
    second with the same key is refused at once; once the first is answered, a retry gets its answer."""
    body = {"model_name": "raced", "version": "v1", "deployment_target": "staging"}
    result: dict = {}
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=raced.pk)
        first = threading.Thread(target=lambda: result.update(first=_request("/deploy", body, "once")))
        first.start()
        deadline = time.monotonic() + 20
        while not _waiting_on_a_lock():
            assert first.is_alive() and time.monotonic() < deadline, "the first request never waited on the lock"
            time.sleep(0.02)
        second = _elsewhere("/deploy", body, "once")  # its own connection: this one holds the lock
        assert second.status_code == 409, second.content
        assert list(second.json()["errors"]) == [HEADER] and "still being handled" in second.json()["detail"]
    first.join(30)
    assert result["first"].status_code == 201, result["first"].content
    retry = _elsewhere("/deploy", body, "once")
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == result["first"].content
    assert Deployment.objects.filter(model=raced).count() == 1
    assert AuditEvent.objects.filter(action="deploy").count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["deploy", "register version (form)", "create model"])
def test_requests_with_one_key_at_once_make_exactly_one_change(raced, kind):
    path, body, multipart = {
        "deploy": ("/deploy", {"model_name": "raced", "version": "v1", "deployment_target": "staging"}, False),
        "register version (form)": ("/models/raced/versions", {"version": "v2", "format": "onnx"}, True),
        "create model": ("/models", {"name": "born_once", "model_type": "audio"}, False),
    }[kind]
    events = AuditEvent.objects.count()

    responses = all_at_once([lambda: _request(path, body, "together", multipart=multipart)] * 6)

    fresh = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    replayed = [r for r in responses if r.get("Idempotent-Replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(fresh) == 1, [(r.status_code, r.content[:200]) for r in responses]
    assert len(fresh) + len(replayed) + len(in_flight) == 6
    assert all(r.content == fresh[0].content and r.status_code == 201 for r in replayed)
    assert all(list(r.json()["errors"]) == [HEADER] for r in in_flight)
    assert AuditEvent.objects.count() == events + 1
    assert IdempotencyKey.objects.count() == 1
