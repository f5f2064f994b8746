"""Who may do what in production mode: a persona per role (and anonymous) against every action of the
API, the refusals writing nothing at all; public reads; `deployed_by` from the token; local mode open as
the seed expects; and the admin console checking the same permissions."""

from __future__ import annotations

from typing import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from deployments_app import services as deployment_services
from deployments_app.models import Deployment
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import Persona, World, registry_state, upload, user_with_role

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "editor", "deployer", "admin")
PERSONAS = (*ROLES, "anonymous")


@pytest.fixture
def world(world, production) -> World:
    """The shared world, made in local mode through the API; then the registry switches to production
    (tokens required, reads included)."""
    return world


@pytest.fixture
def personas(world, persona) -> dict[str, Persona]:
    return {role: persona(role) for role in PERSONAS}


# --- The actions ----------------------------------------------------------------------------------------
def _create_version(c, w):
    return c.post(
        "/models/resnet/versions", {"version": "v9", "format": "onnx", "file": upload(b"nine")}, format="multipart"
    )


def _put_file(c, w):
    return c.generic(
        "PUT", "/models/resnet/versions/v3/file?filename=three.onnx", b"three", content_type="application/octet-stream"
    )


def _deploy(target: str, version: str = "v2"):
    def run(c, w):
        body = {"model_name": "resnet", "version": version, "deployment_target": target, "deployed_by": "spoof"}
        return c.post("/deploy", body, format="json")

    return run


READS: dict[str, Callable] = {
    "list models": lambda c, w: c.get("/models"),
    "get model": lambda c, w: c.get("/models/resnet"),
    "list versions": lambda c, w: c.get("/models/resnet/versions"),
    "get version": lambda c, w: c.get("/models/resnet/versions/v1"),
    "default version": lambda c, w: c.get("/models/resnet/versions/default"),
    "latest version": lambda c, w: c.get("/models/resnet/versions/latest"),
    "download file": lambda c, w: c.get("/models/resnet/versions/v1/file"),
    "download default file": lambda c, w: c.get("/models/resnet/versions/default/file"),
    "list deployments": lambda c, w: c.get("/deployments"),
    "get deployment": lambda c, w: c.get(f"/deployments/{w.staging.pk}"),
    "list targets": lambda c, w: c.get("/targets"),
    "get target": lambda c, w: c.get("/targets/production"),
    "a model's targets": lambda c, w: c.get("/models/resnet/targets"),
    "download from a target": lambda c, w: c.get("/models/resnet/targets/staging/file"),
}
EDITORS = {"editor", "admin"}
DEPLOYERS = {"editor", "deployer", "admin"}
WRITES: dict[str, tuple[Callable, set[str]]] = {
    "create model": (
        lambda c, w: c.post("/models", {"name": "new_one", "model_type": "audio"}, format="json"),
        EDITORS,
    ),
    "update model": (lambda c, w: c.patch("/models/resnet", {"description": "changed"}, format="json"), EDITORS),
    "delete model": (lambda c, w: c.delete("/models/spare"), EDITORS),
    "register version": (_create_version, EDITORS),
    "upload file": (_put_file, EDITORS),
    "update version": (lambda c, w: c.patch("/models/resnet/versions/v2", {"accuracy": 0.5}, format="json"), EDITORS),
    "archive version": (
        lambda c, w: c.patch("/models/resnet/versions/v2", {"status": "archived"}, format="json"),
        EDITORS,
    ),
    "set default": (lambda c, w: c.post("/models/resnet/versions/v2/default"), EDITORS),
    "delete version": (lambda c, w: c.delete("/models/resnet/versions/v2"), EDITORS),
    "deploy to staging": (_deploy("staging"), DEPLOYERS),
    "deploy to production": (_deploy("production"), {"deployer", "admin"}),
    "roll back": (
        lambda c, w: c.post(f"/deployments/{w.staging.pk}/rollback", {"reason": "bad"}, format="json"),
        {"deployer", "admin"},
    ),
    "roll back a target": (
        lambda c, w: c.post("/models/resnet/targets/staging/rollback", {"reason": "bad"}, format="json"),
        {"deployer", "admin"},
    ),
    "create target": (lambda c, w: c.post("/targets", {"name": "eu-west"}, format="json"), {"admin"}),
    "change target": (lambda c, w: c.patch("/targets/staging", {"protected": True}, format="json"), {"admin"}),
    "delete target": (lambda c, w: c.delete("/targets/batch"), {"admin"}),
}


@pytest.mark.parametrize("role", PERSONAS)
@pytest.mark.parametrize("action", READS)
def test_reads_need_a_token_with_any_role(personas, world, role, action):
    response = READS[action](personas[role].client, world)
    if role == "anonymous":
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"] == "Bearer"
    else:
        assert response.status_code == 200, (role, action, response.content[:300])


@pytest.mark.parametrize("role", PERSONAS)
@pytest.mark.parametrize("action", WRITES)
def test_write_matrix(personas, world, storage_dir, role, action):
    run, allowed = WRITES[action]
    before = registry_state(storage_dir)

    response = run(personas[role].client, world)

    if role in allowed:
        assert 200 <= response.status_code < 300, (role, action, response.content[:500])
        assert registry_state(storage_dir) != before
        # The write is answered for: one event, naming the token's user.
        events = AuditEvent.objects.exclude(pk__in=[e["id"] for e in before["audit"]])
        assert [(e.actor, e.via) for e in events] == [(personas[role].user.username, "api")], action
    else:
        expected = 401 if role == "anonymous" else 403
        assert response.status_code == expected, (role, action, response.content[:500])
        if expected == 401:
            assert response["WWW-Authenticate"] == "Bearer"
        assert response.json()["detail"]
        assert registry_state(storage_dir) == before, "a refused write changed something"


def test_the_editors_refusal_to_deploy_to_production_says_why(personas, world, storage_dir):
    before = registry_state(storage_dir)
    response = _deploy("production")(personas["editor"].client, world)
    assert response.status_code == 403
    assert "deployer" in response.json()["detail"]
    assert registry_state(storage_dir) == before
    # The same editor may deploy that version elsewhere.
    assert _deploy("canary")(personas["editor"].client, world).status_code == 201


def test_superseding_production_also_needs_the_deployer_role(personas, world, storage_dir):
    deployment_services.deploy_version(version=world.v1, target="production", acting_user=Operator(), deployed_by="ci")
    before = registry_state(storage_dir)
    assert _deploy("production", "v2")(personas["editor"].client, world).status_code == 403
    assert registry_state(storage_dir) == before
    assert _deploy("production", "v2")(personas["deployer"].client, world).status_code == 201


@pytest.mark.parametrize("role", ROLES)
def test_only_the_admin_role_reads_the_audit_trail(personas, world, role):
    response = personas[role].client.get("/audit")
    assert response.status_code == (200 if role == "admin" else 403)
    if role == "admin":
        assert response.json()["results"]
    assert personas["anonymous"].client.get("/audit").status_code == 401


# --- Public reads --------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", READS)
def test_public_read_lets_anonymous_read(personas, world, settings, action):
    settings.REGISTRY_PUBLIC_READ = True
    assert READS[action](personas["anonymous"].client, world).status_code == 200


@pytest.mark.parametrize("action", WRITES)
def test_public_read_keeps_writes_closed(personas, world, settings, storage_dir, action):
    settings.REGISTRY_PUBLIC_READ = True
    before = registry_state(storage_dir)
    response = WRITES[action][0](personas["anonymous"].client, world)
    assert response.status_code == 401
    assert registry_state(storage_dir) == before


def test_public_read_keeps_the_audit_trail_private(personas, world, settings):
    settings.REGISTRY_PUBLIC_READ = True
    event = AuditEvent.objects.first()
    anonymous = personas["anonymous"].client
    assert anonymous.get("/audit").status_code == 401
    assert anonymous.get(f"/audit/{event.pk}").status_code == 401
    assert personas["viewer"].client.get("/audit").status_code == 403


# --- Who deployed ------------------------------------------------------------------------------------
def test_deployed_by_is_the_tokens_user_in_production(personas, world):
    response = _deploy("production")(personas["deployer"].client, world)
    assert response.status_code == 201
    assert response.json()["deployed_by"] == "deployer-user"
    assert Deployment.objects.get(pk=response.json()["id"]).deployed_by == "deployer-user"


def test_deployed_by_from_the_client_is_kept_in_local_mode(world, settings):
    settings.LOCAL_MODE = True
    response = _deploy("production")(APIClient(), world)
    assert response.status_code == 201
    assert Deployment.objects.get(pk=response.json()["id"]).deployed_by == "spoof"


# --- Local mode ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [*READS, *WRITES])
def test_local_mode_is_open_to_anonymous(world, settings, action):
    settings.LOCAL_MODE = True
    run = READS.get(action) or WRITES[action][0]
    response = run(APIClient(), world)
    assert 200 <= response.status_code < 300, (action, response.content[:300])


def test_local_mode_audit_names_anonymous(world, settings):
    settings.LOCAL_MODE = True
    assert APIClient().patch("/models/resnet", {"description": "x"}, format="json").status_code == 200
    event = AuditEvent.objects.get(action="update")
    assert (event.actor, event.via, event.client_address) == ("anonymous", "api", "127.0.0.1")


# --- The admin console ----------------------------------------------------------------------------------
def staff(role: str) -> Client:
    user = user_with_role(f"staff-{role}", role, password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def test_admin_viewer_sees_every_page(world):
    client = staff("viewer")
    pages = [
        admin_url("index"),
        admin_url("models_app_registeredmodel_changelist"),
        admin_url("models_app_registeredmodel_change", world.model.pk),
        admin_url("models_app_modelversion_changelist"),
        admin_url("models_app_modelversion_change", world.v1.pk),
        admin_url("deployments_app_deployment_changelist"),
        admin_url("deployments_app_deployment_change", world.staging.pk),
    ]
    for page in pages:
        assert client.get(page).status_code == 200, page
    change = client.get(admin_url("models_app_registeredmodel_change", world.model.pk))
    assert change.context["has_change_permission"] is False
    assert b'name="_save"' not in change.content


def test_admin_viewer_cannot_change_add_or_delete(world, storage_dir):
    client = staff("viewer")
    before = registry_state(storage_dir)
    posts = [
        (
            admin_url("models_app_registeredmodel_change", world.model.pk),
            {"model_type": "audio", "description": "hacked", "is_active": "on"},
        ),
        (admin_url("models_app_registeredmodel_add"), {"name": "evil", "model_type": "audio"}),
        (admin_url("models_app_registeredmodel_delete", world.spare.pk), {"post": "yes"}),
        (admin_url("models_app_modelversion_change", world.v2.pk), {"status": "archived", "format": "onnx"}),
        (admin_url("models_app_modelversion_delete", world.v2.pk), {"post": "yes"}),
        (
            admin_url("models_app_modelversion_add"),
            {"model": world.model.pk, "version": "v7", "format": "onnx", "status": "training"},
        ),
    ]
    for page, data in posts:
        assert client.post(page, data).status_code == 403, page
    assert client.get(admin_url("models_app_registeredmodel_add")).status_code == 403
    assert registry_state(storage_dir) == before


def test_admin_viewer_gets_no_actions_and_cannot_run_them(world, storage_dir):
    client = staff("viewer")
    for changelist in (
        "models_app_modelversion_changelist",
        "deployments_app_deployment_changelist",
        "models_app_registeredmodel_changelist",
    ):
        response = client.get(admin_url(changelist))
        assert response.status_code == 200
        if changelist == "models_app_modelversion_changelist":  # comparing is reading: a viewer may
            actions = [value for value, _ in response.context["action_form"].fields["action"].choices if value]
            assert actions == ["compare"], actions
        else:
            assert response.context["action_form"] is None, changelist
    before = registry_state(storage_dir)
    attempts = [
        ("models_app_modelversion_changelist", "make_default", [world.v2.pk], {}),
        ("models_app_modelversion_changelist", "archive", [world.v2.pk], {}),
        ("models_app_modelversion_changelist", "deploy_to_target", [world.v2.pk], {"apply": "1", "target": "prod"}),
        ("models_app_modelversion_changelist", "delete_selected", [world.v2.pk], {"post": "yes"}),
        ("deployments_app_deployment_changelist", "roll_back", [world.staging.pk], {"apply": "1", "reason": "x"}),
    ]
    for changelist, action, selected, extra in attempts:
        response = client.post(admin_url(changelist), {"action": action, "_selected_action": selected, **extra})
        assert response.status_code in (200, 302, 403), action
    assert registry_state(storage_dir) == before


def test_admin_editor_cannot_deploy_to_production(world, storage_dir):
    client = staff("editor")
    before = registry_state(storage_dir)
    response = client.post(
        admin_url("models_app_modelversion_changelist"),
        {"action": "deploy_to_target", "_selected_action": [world.v2.pk], "apply": "1", "target": "production"},
    )
    assert response.status_code in (200, 302)
    messages = [m.message for m in get_messages(response.wsgi_request)]
    assert any("deployer" in m for m in messages), messages
    assert registry_state(storage_dir) == before
    # Staging is the editor's to deploy to.
    client.post(
        admin_url("models_app_modelversion_changelist"),
        {"action": "deploy_to_target", "_selected_action": [world.v2.pk], "apply": "1", "target": "staging"},
    )
    assert Deployment.objects.get(deployment_target="staging", deployment_status="active").model_version == world.v2


def test_admin_editor_has_no_rollback_and_deployer_does(world):
    editor = staff("editor").get(admin_url("deployments_app_deployment_changelist"))
    deployer = staff("deployer").get(admin_url("deployments_app_deployment_changelist"))
    assert editor.context["action_form"] is None
    choices = [value for value, _ in deployer.context["action_form"].fields["action"].choices]
    assert "roll_back" in choices


def test_admin_deployer_cannot_create_models(world, storage_dir):
    client = staff("deployer")
    before = registry_state(storage_dir)
    assert (
        client.post(admin_url("models_app_registeredmodel_add"), {"name": "nope", "model_type": "audio"}).status_code
        == 403
    )
    assert registry_state(storage_dir) == before
