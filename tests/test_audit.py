"""The audit trail: every kind of write, from the API, the admin and the commands, appends one event
saying who, through which door, from where, to what and what changed; refused writes append nothing;
GET /audit filters and orders it; nothing edits or deletes an event, and events outlive their model."""

from __future__ import annotations

import getpass
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from deployments_app import services as deployment_services
from deployments_app.models import Deployment
from models_app.models import ModelVersion, RegisteredModel
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import production_mode, sha256, stored_files, upload

pytestmark = pytest.mark.django_db

CLIENT_ADDRESS = "192.0.2.10"
SHELL_ACTOR = f"{getpass.getuser()} (shell)"


@pytest.fixture
def operator(world, settings, persona):
    """Production mode and a token of the admin role, calling from CLIENT_ADDRESS."""
    production_mode(settings)
    return persona("admin", username="olivia", address=CLIENT_ADDRESS).client


def new_events(since_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=since_id).order_by("id"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- Every kind of write from the API ------------------------------------------------------------------
def _deploy(c, w):
    return c.post("/deploy", {"model_name": "resnet", "version": "v2", "deployment_target": "staging"}, format="json")


API_WRITES = {
    # name: (request, action, object_type, object_repr, expected subset of changes)
    "create model": (
        lambda c, w: c.post("/models", {"name": "fresh", "model_type": "audio", "description": "d"}, format="json"),
        "create",
        "model",
        "fresh",
        "fresh",
        {"model_type": "audio", "description": "d", "is_active": True},
    ),
    "update model": (
        lambda c, w: c.patch("/models/resnet", {"description": "new words"}, format="json"),
        "update",
        "model",
        "resnet",
        "resnet",
        {"description": ["", "new words"]},
    ),
    "delete model": (
        lambda c, w: c.delete("/models/spare"),
        "delete",
        "model",
        "spare",
        "spare",
        {"versions": []},
    ),
    "register version with file": (
        lambda c, w: c.post(
            "/models/resnet/versions",
            {"version": "v9", "format": "onnx", "accuracy": "0.9", "file": upload(b"nine", "n.onnx")},
            format="multipart",
        ),
        "create",
        "version",
        "resnet:v9",
        "resnet",
        {
            "format": "onnx",
            "is_default": False,
            "accuracy": 0.9,
            "checksum": sha256(b"nine"),
            "file_size": 4,
            "file_name": "n.onnx",
        },
    ),
    "upload file": (
        lambda c, w: c.generic(
            "PUT",
            "/models/resnet/versions/v3/file?filename=three.onnx",
            b"three",
            content_type="application/octet-stream",
        ),
        "upload",
        "version",
        "resnet:v3",
        "resnet",
        {"checksum": sha256(b"three"), "file_size": 5, "file_name": "three.onnx"},
    ),
    "set default": (
        lambda c, w: c.post("/models/resnet/versions/v2/default"),
        "set_default",
        "version",
        "resnet:v2",
        "resnet",
        {"previous_default": "v1"},
    ),
    "update version": (
        lambda c, w: c.patch("/models/resnet/versions/v2", {"accuracy": 0.5, "release_notes": "rn"}, format="json"),
        "update",
        "version",
        "resnet:v2",
        "resnet",
        {"accuracy": [None, 0.5], "release_notes": ["", "rn"]},
    ),
    "archive version": (
        lambda c, w: c.patch("/models/resnet/versions/v2", {"status": "archived"}, format="json"),
        "archive",
        "version",
        "resnet:v2",
        "resnet",
        {"status": ["training", "archived"]},
    ),
    "delete version": (
        lambda c, w: c.delete("/models/resnet/versions/v2"),
        "delete",
        "version",
        "resnet:v2",
        "resnet",
        {"checksum": sha256(b"two")},
    ),
    "deploy": (
        _deploy,
        "deploy",
        "deployment",
        "resnet:v2 -> staging",
        "resnet",
        {},
    ),
    "roll back": (
        lambda c, w: c.post(f"/deployments/{w.staging.pk}/rollback", {"reason": "broken"}, format="json"),
        "rollback",
        "deployment",
        "resnet:v1 -> staging",
        "resnet",
        {"reason": "broken", "restored": None},
    ),
}


@pytest.mark.parametrize("name", API_WRITES)
def test_api_writes_record_who_from_where_what_and_the_change(operator, world, name):
    run, action, object_type, object_repr, model_name, changes = API_WRITES[name]
    since = last_id()
    before = timezone.now()

    response = run(operator, world)

    assert 200 <= response.status_code < 300, response.content[:400]
    events = new_events(since)
    assert len(events) == 1, [(e.action, e.object_repr) for e in events]
    event = events[0]
    assert (event.actor, event.via, event.client_address) == ("olivia", "api", CLIENT_ADDRESS)
    assert (event.action, event.object_type, event.object_repr, event.model_name) == (
        action,
        object_type,
        object_repr,
        model_name,
    )
    assert before <= event.at <= timezone.now()
    assert changes.items() <= event.changes.items(), event.changes


def test_deploy_event_names_the_deployment_and_what_it_superseded(operator, world):
    since = last_id()
    body = _deploy(operator, world).json()
    event = new_events(since)[0]
    assert event.changes["deployment"] == body["id"]
    assert event.changes["superseded"] == world.staging.pk


@pytest.mark.parametrize("name", ["create model", "update model", "deploy", "upload file"])
def test_local_mode_api_writes_are_recorded_as_anonymous(world, name):
    run, action, *_ = API_WRITES[name]
    since = last_id()
    response = run(APIClient(REMOTE_ADDR=CLIENT_ADDRESS), world)
    assert 200 <= response.status_code < 300
    [event] = new_events(since)
    assert (event.actor, event.via, event.client_address, event.action) == ("anonymous", "api", CLIENT_ADDRESS, action)


def test_actor_does_not_leak_between_requests(operator, world, settings):
    """The actor lives in a context variable: after a token's request, the next anonymous local-mode
    request must not be recorded under the token's user."""
    assert operator.patch("/models/resnet", {"description": "by olivia"}, format="json").status_code == 200
    settings.LOCAL_MODE = True
    since = last_id()
    assert APIClient().patch("/models/resnet", {"description": "by nobody"}, format="json").status_code == 200
    [event] = new_events(since)
    assert event.actor == "anonymous"


# --- Refused writes record nothing -------------------------------------------------------------------
REFUSED = {
    "duplicate model": (lambda c, w: c.post("/models", {"name": "resnet", "model_type": "audio"}, format="json"), 409),
    "bad model type": (lambda c, w: c.post("/models", {"name": "x", "model_type": "robot"}, format="json"), 400),
    "duplicate version": (
        # v1 is onnx: the same version with another format (the same one would be a re-send: 200)
        lambda c, w: c.post("/models/resnet/versions", {"version": "v1", "format": "tflite"}, format="json"),
        409,
    ),
    "sha256 mismatch": (
        lambda c, w: c.post(
            "/models/resnet/versions",
            {"version": "v8", "format": "onnx", "file": upload(b"x"), "sha256": "0" * 64},
            format="multipart",
        ),
        400,
    ),
    "second file": (
        lambda c, w: c.generic(
            "PUT", "/models/resnet/versions/v1/file", b"again", content_type="application/octet-stream"
        ),
        409,
    ),
    "delete default": (lambda c, w: c.delete("/models/resnet/versions/v1"), 409),
    "archive default": (lambda c, w: c.patch("/models/resnet/versions/v1", {"status": "archived"}, format="json"), 409),
    "delete deployed model": (lambda c, w: c.delete("/models/resnet"), 409),
    "deploy without file": (
        lambda c, w: c.post(
            "/deploy", {"model_name": "resnet", "version": "v3", "deployment_target": "staging"}, format="json"
        ),
        409,
    ),
    "unknown field": (lambda c, w: c.patch("/models/resnet", {"descripton": "typo"}, format="json"), 400),
    "rename": (lambda c, w: c.patch("/models/resnet", {"name": "other"}, format="json"), 400),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused_writes_record_nothing(operator, world, storage_dir, name):
    run, status = REFUSED[name]
    since = last_id()
    files = stored_files(storage_dir)
    response = run(operator, world)
    assert response.status_code == status, response.content[:300]
    assert new_events(since) == []
    assert stored_files(storage_dir) == files


def test_refused_rollback_records_nothing(operator, world):
    deployment_services.rollback_deployment(deployment=world.staging, reason="first")
    since = last_id()
    response = operator.post(f"/deployments/{world.staging.pk}/rollback", {}, format="json")
    assert response.status_code == 409
    assert new_events(since) == []


# --- The admin -------------------------------------------------------------------------------------
def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def _admin_events(since: int, admin_user) -> list[AuditEvent]:
    events = new_events(since)
    assert events, "nothing recorded"
    for event in events:
        assert (event.actor, event.via, event.client_address) == (admin_user.username, "admin", "127.0.0.1")
    return events


def test_admin_add_model_is_recorded(admin_client, admin_user, world):
    since = last_id()
    response = admin_client.post(
        admin_url("models_app_registeredmodel_add"), {"name": "from_admin", "model_type": "audio", "is_active": "on"}
    )
    assert response.status_code == 302
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr, event.model_name) == ("create", "from_admin", "from_admin")


def test_admin_make_default_action_is_recorded(admin_client, admin_user, world):
    since = last_id()
    admin_client.post(
        admin_url("models_app_modelversion_changelist"),
        {"action": "make_default", "_selected_action": [world.v2.pk], "index": 0},
    )
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr, event.changes) == ("set_default", "resnet:v2", {"previous_default": "v1"})


def test_admin_deploy_action_is_recorded(admin_client, admin_user, world):
    since = last_id()
    admin_client.post(
        admin_url("models_app_modelversion_changelist"),
        {"action": "deploy_to_target", "_selected_action": [world.v2.pk], "apply": "1", "target": "production"},
    )
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr) == ("deploy", "resnet:v2 -> production")
    assert Deployment.objects.get(pk=event.changes["deployment"]).deployed_by == admin_user.username


def test_admin_rollback_action_is_recorded(admin_client, admin_user, world):
    since = last_id()
    admin_client.post(
        admin_url("deployments_app_deployment_changelist"),
        {"action": "roll_back", "_selected_action": [world.staging.pk], "apply": "1", "reason": "bad"},
    )
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.changes["reason"], event.changes["deployment"]) == (
        "rollback",
        "bad",
        world.staging.pk,
    )


def test_admin_edit_of_a_model_records_the_change(admin_client, admin_user, world):
    since = last_id()
    response = admin_client.post(
        admin_url("models_app_registeredmodel_change", world.spare.pk),
        {
            "model_type": "classification",
            "description": "edited",
            "is_active": "on",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr) == ("update", "spare")
    assert event.changes == {"description": ["", "edited"]}


def test_admin_edit_of_a_version_records_the_change(admin_client, admin_user, world):
    since = last_id()
    change = admin_url("models_app_modelversion_change", world.v2.pk)
    form = admin_client.get(change).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data.update({"accuracy": "0.75", "deployments-TOTAL_FORMS": "0", "deployments-INITIAL_FORMS": "0"})
    response = admin_client.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr) == ("update", "resnet:v2")
    assert event.changes == {"accuracy": [None, 0.75]}


def test_admin_delete_is_recorded(admin_client, admin_user, world):
    since = last_id()
    admin_client.post(admin_url("models_app_registeredmodel_delete", world.spare.pk), {"post": "yes"})
    [event] = _admin_events(since, admin_user)
    assert (event.action, event.object_repr, event.changes) == ("delete", "spare", {"versions": []})


def test_admin_refusal_records_nothing(admin_client, world):
    since = last_id()
    admin_client.post(admin_url("models_app_registeredmodel_delete", world.model.pk), {"post": "yes"})
    admin_client.post(
        admin_url("models_app_modelversion_changelist"),
        {"action": "archive", "_selected_action": [world.v1.pk], "index": 0},
    )
    assert new_events(since) == []


def test_admin_token_create_and_revoke_are_recorded(admin_client, admin_user, world):
    owner = User.objects.create_user("ci-bot")
    since = last_id()
    admin_client.post(
        admin_url("registry_site_apitoken_add"),
        {"user": owner.pk, "name": "pipe", "scope_read": "on", "expires_at_0": "", "expires_at_1": ""},
    )
    token = owner.api_tokens.get()
    admin_client.post(
        admin_url("registry_site_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk], "index": 0}
    )
    events = _admin_events(since, admin_user)
    assert [e.action for e in events] == ["create_token", "revoke_token"]
    assert all(e.changes["user"] == "ci-bot" for e in events)
    assert all(token.prefix in e.object_repr for e in events)


# --- Commands ----------------------------------------------------------------------------------------
def run_command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _command_events(since: int) -> list[AuditEvent]:
    events = new_events(since)
    assert events, "nothing recorded"
    for event in events:
        assert (event.actor, event.via, event.client_address) == (SHELL_ACTOR, "command", None)
    return events


def test_command_deploy_is_recorded(world):
    since = last_id()
    run_command("deploy", "resnet", "v2", "production")
    [event] = _command_events(since)
    assert (event.action, event.object_repr) == ("deploy", "resnet:v2 -> production")


def test_command_rollback_is_recorded(world):
    since = last_id()
    run_command("rollback", str(world.staging.pk), "--reason", "cli")
    [event] = _command_events(since)
    assert (event.action, event.changes["reason"]) == ("rollback", "cli")


def test_command_set_default_is_recorded(world):
    since = last_id()
    run_command("set_default", "resnet", "v2")
    [event] = _command_events(since)
    assert (event.action, event.object_repr) == ("set_default", "resnet:v2")


def test_command_register_version_is_recorded(world, tmp_path):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"from-disk")
    since = last_id()
    run_command("register_version", "resnet", "v7", "--format", "onnx", "--file", str(path))
    [event] = _command_events(since)
    assert (event.action, event.object_repr) == ("create", "resnet:v7")
    assert event.changes["checksum"] == sha256(b"from-disk")


def test_command_create_token_is_recorded(world):
    User.objects.create_user("ci-bot")
    since = last_id()
    run_command("create_token", "ci-bot", "--scope", "read", "--scope", "deploy:staging", "--models", "res*")
    [event] = _command_events(since)
    assert (event.action, event.changes["user"]) == ("create_token", "ci-bot")
    assert (event.changes["scopes"], event.changes["models"]) == (["read", "deploy:staging"], "res*")


def test_services_called_outside_any_door_are_still_attributed(world):
    since = last_id()
    deployment_services.deploy_version(version=world.v2, target="batch", acting_user=Operator())
    [event] = new_events(since)
    assert event.actor and event.via in {"api", "admin", "command"}


# --- GET /audit ---------------------------------------------------------------------------------------
@pytest.fixture
def trail(db):
    """Events written at known times (oldest first)."""
    start = timezone.now() - timedelta(hours=10)
    rows = [
        ("alice", "create", "alpha", 0),
        ("bob", "update", "alpha", 1),
        ("alice", "deploy", "beta", 2),
        ("carol", "delete", "alpha", 3),
        ("bob", "deploy", "alpha", 4),
    ]
    events = [
        AuditEvent.objects.create(
            at=start + timedelta(hours=h),
            actor=actor,
            via="api",
            action=action,
            object_type="model",
            object_repr=model,
            model_name=model,
        )
        for actor, action, model, h in rows
    ]
    return start, events


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [event["id"] for event in response.json()["results"]]


def test_audit_lists_newest_first_with_every_field(trail):
    start, events = trail
    response = APIClient().get("/audit")
    assert ids(response) == [e.pk for e in reversed(events)]
    first = response.json()["results"][0]
    assert set(first) == {
        "id",
        "at",
        "actor",
        "via",
        "client_address",
        "request_id",
        "action",
        "object_type",
        "object_repr",
        "model_name",
        "changes",
    }
    assert (first["actor"], first["action"], first["model_name"]) == ("bob", "deploy", "alpha")


def test_audit_filters(trail):
    start, events = trail
    e = {i: event.pk for i, event in enumerate(events)}
    api = APIClient()
    assert ids(api.get("/audit", {"model": "beta"})) == [e[2]]
    assert ids(api.get("/audit", {"actor": "bob"})) == [e[4], e[1]]
    assert ids(api.get("/audit", {"action": "deploy"})) == [e[4], e[2]]
    assert ids(api.get("/audit", {"model": "alpha", "action": "deploy"})) == [e[4]]
    since = (start + timedelta(hours=2)).isoformat()
    until = (start + timedelta(hours=4)).isoformat()
    assert ids(api.get("/audit", {"since": since})) == [e[4], e[3], e[2]]
    assert ids(api.get("/audit", {"until": until})) == [e[3], e[2], e[1], e[0]]
    assert ids(api.get("/audit", {"since": since, "until": until})) == [e[3], e[2]]
    assert ids(api.get("/audit", {"actor": "nobody"})) == []


def test_audit_filters_accept_utc_z_and_offsets(trail):
    start, events = trail
    since = start + timedelta(hours=3)  # aware, in UTC
    z = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert ids(APIClient().get("/audit", {"since": z})) == [events[4].pk, events[3].pk]
    two_hours_east = (since + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    assert ids(APIClient().get("/audit", {"since": two_hours_east})) == [events[4].pk, events[3].pk]


def test_audit_refuses_unknown_or_malformed_filters(trail):
    api = APIClient()
    assert api.get("/audit", {"user": "bob"}).status_code == 400
    assert api.get("/audit", {"ordering": "at"}).status_code == 400
    assert api.get("/audit", {"since": "yesterday"}).status_code == 400


def test_audit_paginates(trail):
    start, events = trail
    first = APIClient().get("/audit", {"page_size": 2}).json()
    assert [e["id"] for e in first["results"]] == [events[4].pk, events[3].pk]
    second = APIClient().get(first["next"]).json()
    assert [e["id"] for e in second["results"]] == [events[2].pk, events[1].pk]


def test_audit_detail(trail):
    start, events = trail
    response = APIClient().get(f"/audit/{events[0].pk}")
    assert response.status_code == 200 and response.json()["actor"] == "alice"
    assert APIClient().get("/audit/999999").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_cannot_be_written_through_the_api(trail, method, settings, persona):
    start, events = trail
    before = list(AuditEvent.objects.order_by("pk").values())
    api = APIClient()
    assert getattr(api, method)("/audit", {"actor": "x"}, format="json").status_code == 405
    assert getattr(api, method)(f"/audit/{events[0].pk}", {"actor": "x"}, format="json").status_code == 405
    # In production, the admin role's token is refused too.
    production_mode(settings)
    api = persona("admin", username="auditor").client
    after_token = list(AuditEvent.objects.order_by("pk").values())
    assert getattr(api, method)("/audit", {"actor": "x"}, format="json").status_code in (403, 405)
    assert getattr(api, method)(f"/audit/{events[0].pk}", {"actor": "x"}, format="json").status_code in (403, 405)
    assert list(AuditEvent.objects.order_by("pk").values()) == after_token
    assert after_token[: len(before)] == before


# --- The admin's audit page ------------------------------------------------------------------------
def test_admin_audit_page_is_read_only(admin_client, trail):
    start, events = trail
    event = events[0]
    before = list(AuditEvent.objects.order_by("pk").values())

    changelist = admin_client.get(admin_url("registry_site_auditevent_changelist"))
    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert changelist.context["action_form"] is None  # no bulk delete
    change = admin_client.get(admin_url("registry_site_auditevent_change", event.pk))
    assert change.status_code == 200
    assert change.context["has_change_permission"] is False and change.context["has_delete_permission"] is False
    assert not change.context["adminform"].form.fields  # every field read-only
    assert b'name="_save"' not in change.content and "alice" in change.content.decode()

    assert admin_client.get(admin_url("registry_site_auditevent_add")).status_code == 403
    assert admin_client.post(admin_url("registry_site_auditevent_add"), {"actor": "x"}).status_code == 403
    assert (
        admin_client.post(
            admin_url("registry_site_auditevent_change", event.pk),
            {"actor": "mallory", "action": "nothing", "via": "api", "object_type": "x", "object_repr": "x"},
        ).status_code
        == 403
    )
    assert admin_client.post(admin_url("registry_site_auditevent_delete", event.pk), {"post": "yes"}).status_code == 403
    admin_client.post(
        admin_url("registry_site_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert list(AuditEvent.objects.order_by("pk").values()) == before


def test_the_model_refuses_to_change_or_delete_an_event(trail):
    start, events = trail
    event = events[0]
    event.actor = "mallory"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    event.refresh_from_db()
    assert event.actor == "alice"


# --- Events outlive what they describe -------------------------------------------------------------------
def test_events_survive_deleting_their_model(operator, world):
    model_name = "short_lived"
    assert operator.post("/models", {"name": model_name, "model_type": "audio"}, format="json").status_code == 201
    assert (
        operator.post(f"/models/{model_name}/versions", {"version": "v1", "format": "onnx"}, format="json").status_code
        == 201
    )
    assert operator.delete(f"/models/{model_name}").status_code == 204
    assert not RegisteredModel.objects.filter(name=model_name).exists()
    assert not ModelVersion.objects.filter(model__name=model_name).exists()

    response = operator.get("/audit", {"model": model_name})
    assert [(e["action"], e["object_repr"]) for e in response.json()["results"]] == [
        ("delete", model_name),
        ("create", f"{model_name}:v1"),
        ("create", model_name),
    ]
    assert response.json()["results"][0]["changes"] == {"versions": ["v1"]}


def test_events_survive_deleting_the_user_who_acted(operator, world):
    operator.patch("/models/resnet", {"description": "x"}, format="json")
    User.objects.filter(username="olivia").delete()
    assert AuditEvent.objects.filter(actor="olivia", action="update").exists()


# --- The database itself (PostgreSQL) ------------------------------------------------------------------
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "UPDATE audit_events SET changes = '{}'::jsonb WHERE id = %s",
        "DELETE FROM audit_events WHERE id = %s",
    ],
)
def test_postgres_refuses_to_update_or_delete_events(trail, sql):
    start, events = trail
    before = list(AuditEvent.objects.order_by("pk").values())
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [events[0].pk] if "%s" in sql else None)
    assert list(AuditEvent.objects.order_by("pk").values()) == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger exists on PostgreSQL only")
def test_postgres_refuses_queryset_update_and_delete(trail):
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditEvent.objects.update(actor="mallory")
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 5
