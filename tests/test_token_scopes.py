"""Scoped tokens in production mode, through real requests: a token may do what both its scope and its
user's roles allow, and no more. Read-only tokens cannot write, write tokens cannot deploy, a deploy
scope limited to targets holds on every door to a target, a model pattern hides the other models from
lists and refuses them by name, a token never exceeds its user, expired and revoked tokens fail at once,
and create_token never changes roles."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from deployments_app.models import Deployment
from models_app.backup import destination, snapshots
from models_app.models import ModelVersion, RegisteredModel
from registry_site.authentication import issue_token, revoke_token
from registry_site.errors import InvalidInput
from registry_site.models import ApiToken, AuditEvent
from registry_site.permissions import TokenScope
from registry_site.roles import grant_role
from tests.conftest import deploy, deployed, production_mode, registry_state, upload, user_with_role
from tests.test_admin_browser import assert_png, browser, csp_violations, engineer, log_in, screenshots, wait_for
from tests.test_command_backup import run, wipe

__all__ = ["browser", "engineer", "screenshots"]  # fixtures, used by name

pytestmark = pytest.mark.django_db


@pytest.fixture
def models(api, make_model, make_version, settings) -> dict[str, Deployment]:
    """vision-cls (v1 and v2 with files, v3 without) and nlp-x (v1), v1 of each active on staging and
    production; made in local mode, then the registry switches to production."""
    vision = make_model(name="vision-cls")
    make_version(vision, "v1", data=b"vision one")
    make_version(vision, "v2", data=b"vision two")
    make_version(vision, "v3", data=None)
    nlp = make_model(name="nlp-x")
    make_version(nlp, "v1", data=b"nlp one")
    made = {
        f"{model}@{target}": Deployment.objects.get(pk=deployed(api, model, "v1", target)["id"])
        for model in ("vision-cls", "nlp-x")
        for target in ("staging", "production")
    }
    production_mode(settings)
    return made


def client_for(user: User, *scopes: str, models: str = "", expires_at=None) -> APIClient:
    _, token = issue_token(
        user=user, name="scoped", scope=TokenScope.parse(scopes, models=models), expires_at=expires_at
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def refused(response, status: int, *words: str, what: str = "") -> None:
    assert response.status_code == status, (what, response.status_code, response.content)
    detail = response.json()["detail"]
    assert all(word in detail for word in words), (what, detail)


def put_file(client: APIClient, model: str = "vision-cls", version: str = "v3"):
    return client.generic(
        "PUT",
        f"/models/{model}/versions/{version}/file?filename=m.onnx",
        b"bytes",
        content_type="application/octet-stream",
    )


# --- Scopes against the roles ----------------------------------------------------------------------------
def test_a_read_only_token_reads_but_cannot_write(models, storage_dir):
    reader = client_for(user_with_role("alice", "admin"), "read")
    assert reader.get("/models/vision-cls/versions/v1").status_code == 200
    assert reader.get("/models/vision-cls/versions/v1/file").status_code == 200
    before = registry_state(storage_dir)

    writes = {
        "create model": reader.post("/models", {"name": "new", "model_type": "audio"}, format="json"),
        "register version": reader.post(
            "/models/vision-cls/versions", {"version": "v9", "format": "onnx", "file": upload()}, format="multipart"
        ),
        "upload a file": put_file(reader),
        "change version": reader.patch("/models/vision-cls/versions/v2", {"status": "approved"}, format="json"),
        "set default": reader.post("/models/vision-cls/versions/v2/default"),
        "delete model": reader.delete("/models/nlp-x"),
    }

    for what, response in writes.items():
        refused(response, 403, "This token's scope is read", "needs the write scope", what=what)
    refused(deploy(reader, "vision-cls", "v2", "staging"), 403, "needs the deploy scope")
    refused(reader.get("/audit"), 403, "needs the admin scope")
    assert registry_state(storage_dir) == before


def test_a_write_token_writes_but_cannot_deploy_or_roll_back(models, storage_dir):
    writer = client_for(user_with_role("alice", "admin"), "read", "write")
    assert writer.post("/models", {"name": "fresh", "model_type": "audio"}, format="json").status_code == 201
    assert put_file(writer).status_code == 200
    assert writer.patch("/models/vision-cls/versions/v2", {"status": "approved"}, format="json").status_code == 200
    before = registry_state(storage_dir)

    refused(deploy(writer, "vision-cls", "v2", "staging"), 403, "needs the deploy scope")
    staging = models["vision-cls@staging"]
    refused(writer.post(f"/deployments/{staging.pk}/rollback", {"reason": "x"}, format="json"), 403, "deploy scope")
    refused(writer.post("/models/vision-cls/targets/staging/rollback", {"reason": "x"}, format="json"), 403, "deploy")
    refused(writer.post("/targets", {"name": "qa"}, format="json"), 403, "needs the admin scope")
    assert registry_state(storage_dir) == before


def test_a_deploy_token_limited_to_staging_cannot_touch_production_even_for_a_deployer(models, storage_dir):
    deployer = client_for(user_with_role("dora", "deployer"), "read", "deploy:staging")
    before = registry_state(storage_dir)

    # Every way to change what runs on production: a deploy (in any spelling of the target), a rollback
    # of its deployment, a rollback by target.
    for target in ("production", "Production"):
        refused(deploy(deployer, "vision-cls", "v2", target), 403, "covers only staging, not 'production'")
    production = models["vision-cls@production"]
    refused(deployer.post(f"/deployments/{production.pk}/rollback", {"reason": "x"}, format="json"), 403, "staging")
    refused(deployer.post("/models/vision-cls/targets/production/rollback", {"reason": "x"}, format="json"), 403)
    assert registry_state(storage_dir) == before

    response = deploy(deployer, "vision-cls", "v2", "Staging")
    assert response.status_code == 201, response.json()
    assert response.json()["deployed_by"] == "dora"
    assert (
        deployer.post("/models/vision-cls/targets/staging/rollback", {"reason": "x"}, format="json").status_code == 200
    )
    rolled = deployer.post(f"/deployments/{models['nlp-x@staging'].pk}/rollback", {"reason": "x"}, format="json")
    assert rolled.status_code == 200, rolled.json()


def test_a_token_for_a_model_pattern_cannot_touch_other_models(models, storage_dir):
    vision = client_for(user_with_role("vic", "admin"), "all", models="vision-*")
    nlp_staging = models["nlp-x@staging"]
    before = registry_state(storage_dir)

    by_name = {
        "get model": vision.get("/models/nlp-x"),
        "list versions": vision.get("/models/nlp-x/versions"),
        "get version": vision.get("/models/nlp-x/versions/v1"),
        "latest": vision.get("/models/nlp-x/versions/latest"),
        "download": vision.get("/models/nlp-x/versions/v1/file"),
        "download default": vision.get("/models/nlp-x/versions/default/file"),
        "its targets": vision.get("/models/nlp-x/targets"),
        "download from a target": vision.get("/models/nlp-x/targets/staging/file"),
        "create a model": vision.post("/models", {"name": "nlp-y", "model_type": "audio"}, format="json"),
        "change it": vision.patch("/models/nlp-x", {"description": "mine"}, format="json"),
        "delete it": vision.delete("/models/nlp-x"),
        "register a version": vision.post("/models/nlp-x/versions", {"version": "v2", "format": "onnx"}, format="json"),
        "upload": put_file(vision, "nlp-x", "v1"),
        "deploy": deploy(vision, "nlp-x", "v1", "staging"),
        "roll back by target": vision.post("/models/nlp-x/targets/staging/rollback", {"reason": "x"}, format="json"),
        "a model that does not exist": vision.get("/models/ghost"),
    }
    for what, response in by_name.items():
        refused(response, 403, "limited to models matching 'vision-*'", what=what)
    # Looked up by id, another model's deployment is not there for this token.
    refused(vision.get(f"/deployments/{nlp_staging.pk}"), 404, f"Deployment {nlp_staging.pk} not found")
    refused(vision.post(f"/deployments/{nlp_staging.pk}/rollback", {"reason": "x"}, format="json"), 404)
    assert registry_state(storage_dir) == before

    # Lists leave the other models out.
    assert [m["name"] for m in vision.get("/models").json()["results"]] == ["vision-cls"]
    assert {d["model_name"] for d in vision.get("/deployments").json()["results"]} == {"vision-cls"}
    assert vision.get("/deployments?model=nlp-x").json()["results"] == []
    audited = {e["model_name"] for e in vision.get("/audit").json()["results"]}
    assert audited == {"vision-cls"}
    # Its own models it may do anything with (its user is an admin).
    assert vision.get("/models/vision-cls/versions/v1/file").status_code == 200
    assert (
        vision.post("/models", {"name": "vision-det", "model_type": "classification"}, format="json").status_code == 201
    )
    assert deploy(vision, "vision-cls", "v2", "production").status_code == 201


def test_a_model_pattern_means_in_lists_what_it_means_by_name(api, make_model, settings):
    """The glob's `?` is one character and `.` is a dot, in the database's filter as in fnmatch."""
    for name in ("a.b1", "axb1", "a.b12", "A.b1"):
        make_model(name=name)
    production_mode(settings)
    client = client_for(user_with_role("vic", "viewer"), "read", models="a.b?")
    assert [m["name"] for m in client.get("/models").json()["results"]] == ["a.b1"]
    assert client.get("/models/a.b1").status_code == 200
    for name in ("axb1", "a.b12", "A.b1"):
        refused(client.get(f"/models/{name}"), 403, "limited to models matching 'a.b?'")


# --- Never more than the user ----------------------------------------------------------------------------
def test_a_token_never_exceeds_its_user_and_follows_its_roles_at_once(models):
    user = user_with_role("val", "viewer")
    everything = client_for(user, "all")
    refused(everything.post("/models", {"name": "new", "model_type": "audio"}, format="json"), 403, "user lacks")
    refused(deploy(everything, "vision-cls", "v2", "staging"), 403, "user lacks")
    refused(everything.get("/audit"), 403, "user lacks")

    grant_role(user=user, role="editor")
    assert everything.post("/models", {"name": "new", "model_type": "audio"}, format="json").status_code == 201
    # An editor may deploy, but not to a protected target, whatever the token's scope says.
    assert deploy(everything, "vision-cls", "v2", "staging").status_code == 201
    refused(deploy(everything, "vision-cls", "v2", "production"), 403, "protected", "deployer role")

    grant_role(user=user, role="editor", revoke=True)
    refused(everything.post("/models", {"name": "newer", "model_type": "audio"}, format="json"), 403, "user lacks")
    assert everything.get("/models").status_code == 200  # still a viewer


def test_a_token_made_without_a_scope_acts_as_its_user_as_tokens_did():
    user = user_with_role("old", "editor")
    row, _ = issue_token(user=user, name="legacy")
    assert row.scope == TokenScope.everything()
    assert str(row.scope) == "read write deploy admin"


# --- Expired and revoked ---------------------------------------------------------------------------------
def test_revoked_and_expired_tokens_fail_at_once(models):
    user = user_with_role("eve", "admin")
    row, token = issue_token(user=user, name="ci", scope=TokenScope(read=True))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/models").status_code == 200
    revoke_token(token=row)
    refused(client.get("/models"), 401, "Invalid, expired or revoked token")

    expiring = client_for(user, "read", expires_at=timezone.now() + timedelta(hours=1))
    assert expiring.get("/models").status_code == 200
    ApiToken.objects.filter(name="scoped").update(expires_at=timezone.now() - timedelta(seconds=1))
    refused(expiring.get("/models"), 401, "Invalid, expired or revoked token")
    expired = client_for(user, "all", expires_at=timezone.now() - timedelta(seconds=1))
    refused(expired.post("/models", {"name": "late", "model_type": "audio"}, format="json"), 401)
    assert not RegisteredModel.objects.filter(name="late").exists()


# --- create_token ----------------------------------------------------------------------------------------
def test_create_token_never_changes_roles(models):
    user = user_with_role("cara", "viewer")
    out = StringIO()
    call_command("create_token", "cara", "--scope", "all", stdout=out, stderr=StringIO())
    assert list(user.groups.values_list("name", flat=True)) == ["viewer"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert client.get("/models").status_code == 200
    refused(client.post("/models", {"name": "new", "model_type": "audio"}, format="json"), 403, "user lacks")


def test_creating_a_token_records_its_scope():
    user = user_with_role("ci", "deployer")
    issue_token(user=user, name="ci", scope=TokenScope.parse(["read", "deploy:staging,qa"], models="vision-*"))
    event = AuditEvent.objects.get(action="create_token")
    assert event.changes["scopes"] == ["read", "deploy:staging,qa"]
    assert event.changes["models"] == "vision-*"


# --- The table's rules -----------------------------------------------------------------------------------
def test_the_database_refuses_a_token_without_scope_or_with_targets_but_no_deploy_scope():
    user = user_with_role("db", "viewer")
    fields = {"user": user, "name": "x", "prefix": "mvr_x", "scope_read": False}
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiToken.objects.create(digest="a" * 64, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiToken.objects.create(digest="b" * 64, **{**fields, "scope_read": True, "deploy_targets": "staging"})
    ApiToken.objects.create(digest="c" * 64, **{**fields, "scope_deploy": True, "deploy_targets": "staging"})


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_tokens_every_scope():
    executor = MigrationExecutor(connection)
    before = [("registry_site", "0005_idempotency_keys")]
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        OldUser = apps.get_model("auth", "User")
        OldToken = apps.get_model("registry_site", "ApiToken")
        owner = OldUser.objects.create(username="legacy")
        pk = OldToken.objects.create(user=owner, name="old", prefix="mvr_old", digest="d" * 64).pk
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert ApiToken.objects.get(pk=pk).scope == TokenScope.everything()
    made = issue_token(user=User.objects.get(username="legacy"), name="new", scope=TokenScope(read=True))[0]
    assert made.scope == TokenScope(read=True)


# --- The admin -------------------------------------------------------------------------------------------
def test_the_admin_makes_scoped_tokens_and_shows_scope_expiry_and_last_use(admin_client, models):
    owner = user_with_role("ci-bot", "deployer")
    form = {"user": owner.pk, "name": "pipeline", "expires_at_0": "", "expires_at_1": "", "model_pattern": ""}
    response = admin_client.post(reverse("admin:registry_site_apitoken_add"), {**form, "deploy_targets": "staging"})
    assert response.status_code == 200  # refused: no scope, and targets without the deploy scope
    assert "Give the token at least one scope" in response.content.decode()
    assert not ApiToken.objects.filter(name="pipeline").exists()

    response = admin_client.post(
        reverse("admin:registry_site_apitoken_add"),
        {**form, "scope_read": "on", "scope_deploy": "on", "deploy_targets": "staging", "model_pattern": "vision-*"},
    )
    assert response.status_code == 302
    row = ApiToken.objects.get(name="pipeline")
    assert str(row.scope) == "read deploy:staging; models vision-*"
    listing = admin_client.get(reverse("admin:registry_site_apitoken_changelist")).content.decode()
    assert "read deploy:staging; models vision-*" in listing
    page = admin_client.get(reverse("admin:registry_site_apitoken_change", args=[row.pk])).content.decode()
    assert "read deploy:staging; models vision-*" in page and "Last used at" in page and "Expires at" in page
    assert AuditEvent.objects.get(action="create_token", object_repr__startswith="pipeline").changes["scopes"] == [
        "read",
        "deploy:staging",
    ]
    assert ModelVersion.objects.exists()


def test_public_reads_are_public_with_any_token(models, settings):
    settings.REGISTRY_PUBLIC_READ = True
    writer = client_for(user_with_role("wes", "admin"), "write", models="vision-*")
    assert [m["name"] for m in writer.get("/models").json()["results"]] == ["nlp-x", "vision-cls"]
    assert writer.get("/models/nlp-x/versions/v1/file").status_code == 200
    refused(writer.patch("/models/nlp-x", {"description": "mine"}, format="json"), 403, "vision-*")
    refused(writer.get("/audit"), 403, "needs the admin scope")  # never public


@pytest.mark.browser
@pytest.mark.xdist_group("browser")
@pytest.mark.django_db(transaction=True)
def test_an_operator_makes_a_scoped_token_in_the_admin_with_a_browser(browser, live_server, engineer, screenshots):
    from selenium.webdriver.common.by import By

    owner = user_with_role("ci-bot", "deployer")
    log_in(browser, live_server, engineer)
    browser.get(f"{live_server.url}/admin/registry_site/apitoken/add/")
    wait_for(browser, "#id_scope_read")
    # The user field is an autocomplete (select2): choose as its search would, by adding the option.
    browser.execute_script(
        "document.getElementById('id_user').add(new Option(arguments[0], arguments[1], true, true))",
        owner.username,
        str(owner.pk),
    )
    browser.find_element(By.ID, "id_name").send_keys("pipeline")
    browser.find_element(By.ID, "id_scope_deploy").click()
    browser.find_element(By.ID, "id_deploy_targets").send_keys("staging")
    browser.find_element(By.ID, "id_model_pattern").send_keys("vision-*")
    browser.save_screenshot(str(screenshots / "token-add.png"))
    assert_png(screenshots / "token-add.png")
    browser.find_element(By.CSS_SELECTOR, 'input[name="_save"]').click()

    message = wait_for(browser, ".messagelist .warning")
    assert "shown only once" in message.text
    row = wait_for(browser, "#result_list tbody tr")
    assert "read deploy:staging; models vision-*" in row.text and "active" in row.text
    browser.save_screenshot(str(screenshots / "token-changelist.png"))
    assert_png(screenshots / "token-changelist.png")
    assert ApiToken.objects.get(name="pipeline").scope == TokenScope.parse(
        ["read", "deploy:staging"], models="vision-*"
    )
    assert csp_violations(browser) == []


def test_a_snapshot_from_before_scopes_restores_its_tokens_acting_as_their_users(api, storage_dir, tmp_path):
    user = user_with_role("ci-bot", "editor")
    scoped, _ = issue_token(user=user, name="scoped", scope=TokenScope(read=True))
    old, _ = issue_token(user=user, name="old")
    run("backup", str(tmp_path / "backup"))
    [snapshot] = snapshots(destination(str(tmp_path / "backup")))
    path = tmp_path / "backup" / "snapshots" / snapshot / "database.json.gz"
    rows = json.loads(gzip.decompress(path.read_bytes()))
    scope_fields = set(ApiToken.scope_fields(TokenScope()))
    for row in rows:
        if row["model"] == "registry_site.apitoken" and row["pk"] == old.pk:  # as 0005's table had it
            row["fields"] = {k: v for k, v in row["fields"].items() if k not in scope_fields}
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    wipe(storage_dir)

    run("restore", str(tmp_path / "backup"))
    assert ApiToken.objects.get(pk=old.pk).scope == TokenScope.everything()
    assert ApiToken.objects.get(pk=scoped.pk).scope == TokenScope(read=True)


def test_issuing_a_token_refuses_a_scope_the_table_would_refuse_naming_the_field():
    user = user_with_role("ivy", "viewer")
    for scope, words in (
        (TokenScope(), "at least one scope"),
        (TokenScope(read=True, deploy_targets=("staging",)), "give the token the deploy scope"),
        (TokenScope(read=True, model_pattern="vision/*"), "A model pattern is"),
    ):
        with pytest.raises(InvalidInput, match=words) as refused_scope:
            issue_token(user=user, name="bad", scope=scope)
        assert set(refused_scope.value.errors or {}) <= {"scope", "model_pattern"}, refused_scope.value.errors
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action="create_token").exists()
