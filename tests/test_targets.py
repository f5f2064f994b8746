"""Deployment targets as first-class objects (issue #10, section 3): the table and its migration, the
/targets API, deploying only to known targets (any spelling resolves to the one target), protected
targets needing the deployer role through the one policy, and what one model has on each target
(GET /models/{m}/targets, its file, its rollback). The admin and manage.py reach the same services."""

from __future__ import annotations

import gzip
import json
from io import StringIO

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models.deletion import ProtectedError
from django.urls import reverse

from deployments_app import selectors, services
from deployments_app.models import Deployment, Target
from models_app.backup import destination, snapshots
from registry_site.errors import Forbidden
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import deploy, deployed, production_mode, registry_state
from tests.test_command_backup import run, wipe

pytestmark = pytest.mark.django_db


@pytest.fixture
def resnet(make_model, make_version):
    """resnet with v1, v2 (files b"one", b"two") and v3 (no file)."""
    model = make_model(name="resnet")
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=b"two")
    make_version(model, "v3", data=None)
    return model


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- The table ------------------------------------------------------------------------------------------
def test_staging_and_production_are_there_and_production_is_protected():
    targets = {t.name: t.protected for t in selectors.targets()}
    assert targets["staging"] is False and targets["production"] is True
    assert [t.name for t in selectors.targets()][:2] == ["staging", "production"]


def test_names_are_unique_ignoring_case_in_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Target.objects.create(name="Production")
    with pytest.raises(IntegrityError), transaction.atomic():
        Target.objects.create(name="STAGING")


def _refused_by_the_database(write) -> None:
    """The write is refused once its foreign keys are checked (they are deferred to the commit)."""
    with pytest.raises(IntegrityError), transaction.atomic():
        write()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        else:
            connection.check_constraints(table_names=[Deployment._meta.db_table])


def test_the_database_refuses_a_deployment_to_an_unknown_target(resnet):
    v1 = resnet.versions.get(version="v1")
    _refused_by_the_database(
        lambda: Deployment.objects.create(model=resnet, model_version=v1, deployment_target_id="nowhere")
    )
    # Nor may a spelling stand in for the target's name: the key is the name itself.
    _refused_by_the_database(
        lambda: Deployment.objects.create(model=resnet, model_version=v1, deployment_target_id="Production")
    )
    assert not Deployment.objects.exists()


def test_a_target_with_deployments_cannot_be_deleted_even_by_the_orm(api, resnet):
    deployed(api, resnet, "v1", "staging")
    with pytest.raises(ProtectedError):
        Target.objects.get(name="staging").delete()


# --- The migration --------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_migration_folds_the_names_the_history_uses(api):
    """Before 0005 a target was any text: `Production` and `production` were two. The migration makes a
    target per name folded to lower case, points every row at it, and leaves one active deployment per
    model and target (the newest)."""
    executor = MigrationExecutor(connection)
    # The models' tables as they were then too: a later models_app migration may add a column the
    # historical models would not fill.
    before = [
        ("deployments_app", "0004_targets_not_starting_with_a_dash"),
        ("models_app", "0005_names_not_starting_with_a_dash"),
    ]
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        Model = apps.get_model("models_app", "RegisteredModel")
        Version = apps.get_model("models_app", "ModelVersion")
        OldDeployment = apps.get_model("deployments_app", "Deployment")
        model = Model.objects.create(name="legacy", model_type="audio")
        v1 = Version.objects.create(model=model, version="v1", format="onnx")
        v2 = Version.objects.create(model=model, version="v2", format="onnx")
        old = OldDeployment.objects.create(model=model, model_version=v1, deployment_target="Production")
        new = OldDeployment.objects.create(model=model, model_version=v2, deployment_target="production")
        canary = OldDeployment.objects.create(model=model, model_version=v1, deployment_target="Canary-EU")
        ids = (old.pk, new.pk, canary.pk)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    rows = {d.pk: d for d in Deployment.objects.filter(pk__in=ids)}
    assert {rows[i].deployment_target_id for i in ids} == {"production", "canary-eu"}
    assert rows[ids[1]].deployment_status == "active"  # the newer of the two actives
    assert rows[ids[0]].deployment_status == "superseded"
    assert rows[ids[2]].deployment_status == "active"
    made = {t.name: t.protected for t in Target.objects.all()}
    assert made["canary-eu"] is False and made["production"] is True and made["staging"] is False
    assert "Production" not in made and "Canary-EU" not in made
    # The history keeps working through the API.
    listed = api.get("/deployments", {"model": "legacy", "target": "Canary-EU"}).json()["results"]
    assert [d["id"] for d in listed] == [ids[2]]


# --- /targets --------------------------------------------------------------------------------------------
def test_list_and_get_targets(api):
    listed = api.get("/targets").json()
    names = [t["name"] for t in listed["results"]]
    assert names[:2] == ["staging", "production"]
    assert listed["results"][1] == {
        "name": "production",
        "description": Target.objects.get(name="production").description,
        "protected": True,
        "display_order": Target.objects.get(name="production").display_order,
    }
    # A name in any case finds its target.
    assert api.get("/targets/PRODUCTION").json()["name"] == "production"
    missing = api.get("/targets/nowhere")
    assert missing.status_code == 404 and "staging" in missing.json()["detail"]


def test_create_a_target(api):
    response = api.post("/targets", {"name": "eu-west", "description": "Frankfurt", "display_order": 5}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"name": "eu-west", "description": "Frankfurt", "protected": False, "display_order": 5}
    assert response["Location"].endswith("/targets/eu-west")
    assert [t.name for t in selectors.targets()][0] == "eu-west"  # display order 5 comes first
    [event] = events("create_target")
    assert event.object_repr == "eu-west" and event.changes["protected"] is False


@pytest.mark.parametrize("name", ["Production", "PRODUCTION", "staging"])
def test_a_name_taken_in_any_case_is_a_409(api, storage_dir, name):
    before = registry_state(storage_dir)
    response = api.post("/targets", {"name": name}, format="json")
    assert response.status_code == 409
    assert set(response.json()["errors"]) == {"name"}
    assert "ignoring case" in response.json()["detail"]
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "../prod"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "ok", "protected": 1}, "protected"),
        ({"name": "ok", "display_order": -1}, "display_order"),
        ({"name": "ok", "display_order": "3"}, "display_order"),
        ({"name": "ok", "display_order": True}, "display_order"),
        ({"name": "ok", "description": "x" * 2001}, "description"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({}, "name"),
    ],
)
def test_bad_target_input_is_a_400_naming_the_field(api, storage_dir, body, field):
    before = registry_state(storage_dir)
    response = api.post("/targets", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert registry_state(storage_dir) == before


def test_change_a_target(api):
    was = Target.objects.get(name="staging").description
    response = api.patch("/targets/Staging", {"protected": True, "description": "pre-prod"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["protected"] is True and response.json()["description"] == "pre-prod"
    [event] = events("update_target")
    assert event.object_repr == "staging"
    assert event.changes == {"protected": [False, True], "description": [was, "pre-prod"]}
    # Nothing changed: no write, no event.
    assert api.patch("/targets/staging", {"protected": True}, format="json").status_code == 200
    assert len(events("update_target")) == 1


@pytest.mark.parametrize(
    "body, field", [({"name": "other"}, "name"), ({"display_order": -3}, "display_order"), ({"x": 1}, "x")]
)
def test_bad_changes_are_400(api, storage_dir, body, field):
    before = registry_state(storage_dir)
    response = api.patch("/targets/staging", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]
    assert registry_state(storage_dir) == before


def test_delete_a_target_never_deployed_to(api):
    assert api.post("/targets", {"name": "tmp"}, format="json").status_code == 201
    assert api.delete("/targets/TMP").status_code == 204
    assert not Target.objects.filter(name="tmp").exists()
    assert [e.object_repr for e in events("delete_target")] == ["tmp"]
    assert api.delete("/targets/tmp").status_code == 404


def test_deleting_a_target_with_deployments_is_a_409(api, resnet, storage_dir):
    deployed(api, resnet, "v1", "staging")
    api.post(f"/deployments/{Deployment.objects.get().pk}/rollback", {}, format="json")  # history only now
    before = registry_state(storage_dir)
    response = api.delete("/targets/staging")
    assert response.status_code == 409
    assert "deployment history" in response.json()["detail"]
    assert registry_state(storage_dir) == before


def test_writes_to_targets_need_the_admin_role_reads_any_role(persona, settings, storage_dir):
    production_mode(settings)
    people = {role: persona(role) for role in ("viewer", "editor", "deployer", "admin")}
    for who in people.values():
        assert who.client.get("/targets").status_code == 200
        assert who.client.get("/targets/production").status_code == 200
    assert persona("anonymous").client.get("/targets").status_code == 401
    before = registry_state(storage_dir)
    for role in ("viewer", "editor", "deployer"):
        client = people[role].client
        assert client.post("/targets", {"name": "mine"}, format="json").status_code == 403, role
        assert client.patch("/targets/production", {"protected": False}, format="json").status_code == 403
        assert client.delete("/targets/staging").status_code == 403
    assert registry_state(storage_dir) == before
    admin = people["admin"].client
    assert admin.post("/targets", {"name": "mine"}, format="json").status_code == 201
    assert admin.patch("/targets/mine", {"protected": True}, format="json").status_code == 200
    assert admin.delete("/targets/mine").status_code == 204
    assert [(e.action, e.actor, e.via) for e in AuditEvent.objects.filter(object_type="target").order_by("id")] == [
        ("create_target", "admin-user", "api"),
        ("update_target", "admin-user", "api"),
        ("delete_target", "admin-user", "api"),
    ]


# --- Deploying to targets ------------------------------------------------------------------------------
def test_deploying_to_an_unknown_target_is_a_400_listing_the_known_ones(api, resnet, storage_dir):
    before = registry_state(storage_dir)
    response = deploy(api, resnet, "v1", "prodution")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"deployment_target"}
    assert "Unknown target 'prodution'" in body["detail"]
    assert "staging" in body["detail"] and "production" in body["detail"]
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize("spelling", ["Production", "PRODUCTION", "production"])
def test_any_spelling_deploys_to_the_one_target_under_its_own_name(api, resnet, spelling):
    body = deployed(api, resnet, "v1", spelling)
    assert body["deployment_target"] == "production"
    assert Deployment.objects.get().deployment_target_id == "production"
    # And it supersedes what another spelling deployed: one target, one active deployment.
    again = deployed(api, resnet, "v2", spelling.swapcase())
    assert again["deployment_target"] == "production"
    assert list(Deployment.objects.filter(deployment_status="active").values_list("pk", flat=True)) == [again["id"]]


@pytest.mark.parametrize("spelling", ["production", "Production", "PRODUCTION", "pRoDuCtIoN"])
def test_no_spelling_of_a_protected_target_lets_an_editor_deploy(persona, settings, resnet, storage_dir, spelling):
    production_mode(settings)
    editor = persona("editor")
    before = registry_state(storage_dir)
    response = deploy(editor.client, resnet, "v1", spelling)
    assert response.status_code == 403
    assert "protected" in response.json()["detail"] and "deployer" in response.json()["detail"]
    assert registry_state(storage_dir) == before
    assert deploy(persona("deployer").client, resnet, "v1", spelling).status_code == 201


def test_protection_is_the_flag_not_the_name(api, persona, settings, resnet):
    """Protect canary and unprotect production: the editor's rights follow the flags."""
    services.update_target(target=Target.objects.get(name="canary"), changes={"protected": True})
    services.update_target(target=Target.objects.get(name="production"), changes={"protected": False})
    production_mode(settings)
    editor = persona("editor").client
    assert deploy(editor, resnet, "v1", "canary").status_code == 403
    assert deploy(editor, resnet, "v1", "production").status_code == 201


def test_the_deploy_command_resolves_and_checks_targets_the_same_way(resnet):
    out = StringIO()
    call_command("deploy", "resnet", "v1", "PRODUCTION", stdout=out)
    assert Deployment.objects.get().deployment_target_id == "production"  # the operator may deploy anywhere
    with pytest.raises(CommandError, match="Unknown target 'nowhere'.*staging"):
        call_command("deploy", "resnet", "v2", "nowhere", stdout=StringIO())
    assert Deployment.objects.count() == 1


def test_a_caller_without_the_permission_is_refused_by_the_service_itself(settings, resnet):
    """The rule is in deploy_version, whichever door calls it."""
    v1 = resnet.versions.get(version="v1")
    settings.LOCAL_MODE = False
    with pytest.raises(Forbidden, match="protected"):
        services.deploy_version(version=v1, target="Production", acting_user=AnonymousUser())
    assert not Deployment.objects.exists()
    assert services.deploy_version(version=v1, target="Production", acting_user=Operator()).created


def test_the_deployment_list_filters_by_target_in_any_case(api, resnet):
    first = deployed(api, resnet, "v1", "staging")
    deployed(api, resnet, "v1", "canary")
    listed = api.get("/deployments", {"target": "STAGING"}).json()["results"]
    assert [d["id"] for d in listed] == [first["id"]]
    assert api.get("/deployments", {"target": "nowhere"}).json()["results"] == []


# --- What a model has on each target -------------------------------------------------------------------
def test_a_models_targets_show_the_active_version_and_the_history(api, resnet):
    first = deployed(api, resnet, "v1", "staging")
    second = deployed(api, resnet, "v2", "staging")
    prod = deployed(api, resnet, "v1", "production")
    response = api.get("/models/resnet/targets")
    assert response.status_code == 200
    rows = {row["target"]: row for row in response.json()["results"]}
    assert [row["target"] for row in response.json()["results"]] == [t.name for t in selectors.targets()]
    assert rows["staging"]["active"]["id"] == second["id"] and rows["staging"]["active"]["version"] == "v2"
    assert [d["id"] for d in rows["staging"]["history"]] == [second["id"], first["id"]]
    assert rows["staging"]["history"][1]["deployment_status"] == "superseded"
    assert rows["production"]["active"]["id"] == prod["id"] and rows["production"]["protected"] is True
    assert rows["canary"] == {
        "target": "canary",
        "description": "",
        "protected": False,
        "active": None,
        "history": [],
        "history_url": "/deployments?model=resnet&target=canary",
        "experiment": None,  # no A/B test runs there (issue #11)
    }
    # The history link is the whole history.
    whole = api.get(rows["staging"]["history_url"]).json()["results"]
    assert [d["id"] for d in whole] == [second["id"], first["id"]]


def test_a_models_target_history_is_bounded_and_the_list_paginated(api, resnet, django_assert_max_num_queries):
    for n in range(14):
        deployed(api, resnet, "v1" if n % 2 else "v2", "staging")
    with django_assert_max_num_queries(8):
        page = api.get("/models/resnet/targets", {"page_size": 1}).json()
    [row] = page["results"]
    assert row["target"] == "staging" and len(row["history"]) == 10
    newest = list(Deployment.objects.filter(deployment_target="staging").order_by("-deployed_at", "-id"))[:10]
    assert [d["id"] for d in row["history"]] == [d.pk for d in newest]
    assert page["next"]
    following = api.get(page["next"]).json()["results"]
    assert [r["target"] for r in following] == ["production"]


def test_a_models_targets_of_an_unknown_model_is_a_404_and_unknown_parameters_a_400(api, resnet):
    assert api.get("/models/nope/targets").status_code == 404
    refused = api.get("/models/resnet/targets", {"colour": "red"})
    assert refused.status_code == 400 and "colour" in refused.json()["errors"]


def test_download_what_is_active_on_a_target(api, resnet):
    deployed(api, resnet, "v1", "staging")
    deployed(api, resnet, "v2", "staging")
    response = api.get("/models/resnet/targets/staging/file")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"two"
    version_file = api.get("/models/resnet/versions/v2/file")
    for header in ("ETag", "Content-Length", "Content-Disposition", "X-Checksum-Sha256", "Accept-Ranges"):
        assert response[header] == version_file[header], header

    # Any spelling of the target; ranges and conditional requests as for the version's own file.
    ranged = api.get("/models/resnet/targets/STAGING/file", HTTP_RANGE="bytes=1-")
    assert ranged.status_code == 206 and b"".join(ranged.streaming_content) == b"wo"
    assert ranged["Content-Range"] == "bytes 1-2/3"
    assert api.get("/models/resnet/targets/staging/file", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert api.get("/models/resnet/targets/staging/file", HTTP_RANGE="bytes=9-").status_code == 416
    head = api.head("/models/resnet/targets/staging/file")
    assert head.status_code == 200 and head["Content-Length"] == "3" and not head.content


def test_downloading_from_a_target_with_nothing_active_is_a_404(api, resnet):
    nothing = api.get("/models/resnet/targets/staging/file")
    assert nothing.status_code == 404 and "active on target 'staging'" in nothing.json()["detail"]
    assert api.get("/models/resnet/targets/nowhere/file").status_code == 404
    assert api.get("/models/nope/targets/staging/file").status_code == 404


def test_roll_back_a_target(api, resnet):
    first = deployed(api, resnet, "v1", "staging")
    second = deployed(api, resnet, "v2", "staging")
    response = api.post("/models/resnet/targets/Staging/rollback", {"reason": "latency"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["rolled_back"]["id"] == second["id"] and body["rolled_back"]["rollback_reason"] == "latency"
    assert body["restored"]["id"] == first["id"]
    assert "active on 'staging' again" in body["detail"]
    assert b"".join(api.get("/models/resnet/targets/staging/file").streaming_content) == b"one"
    [event] = events("rollback")
    assert event.changes == {"deployment": second["id"], "reason": "latency", "restored": first["id"]}

    emptied = api.post("/models/resnet/targets/staging/rollback", {}, format="json").json()
    assert emptied["restored"] is None
    nothing = api.post("/models/resnet/targets/staging/rollback", {}, format="json")
    assert nothing.status_code == 409 and "active on target 'staging'" in nothing.json()["detail"]
    assert api.post("/models/resnet/targets/nowhere/rollback", {}, format="json").status_code == 404
    assert api.post("/models/resnet/targets/staging/rollback", {"why": "x"}, format="json").status_code == 400


def test_rolling_back_a_target_needs_the_rollback_permission(api, persona, settings, resnet, storage_dir):
    deployed(api, resnet, "v1", "staging")
    production_mode(settings)
    people = {role: persona(role).client for role in ("viewer", "editor", "deployer")}
    before = registry_state(storage_dir)
    for role in ("viewer", "editor"):
        assert people[role].post("/models/resnet/targets/staging/rollback", {}, format="json").status_code == 403
    assert registry_state(storage_dir) == before
    deployer = people["deployer"]
    assert deployer.get("/models/resnet/targets").status_code == 200
    assert deployer.post("/models/resnet/targets/staging/rollback", {}, format="json").status_code == 200


# --- The admin ------------------------------------------------------------------------------------------
def test_the_admin_makes_changes_and_deletes_targets_through_the_services(admin_client):
    add = admin_client.post(
        reverse("admin:deployments_app_target_add"),
        {"name": "edge-eu", "description": "", "display_order": 7, "protected": "on"},
    )
    assert add.status_code == 302, add.context["adminform"].form.errors if add.context else add
    target = Target.objects.get(name="edge-eu")
    assert target.protected and target.display_order == 7
    change_url = reverse("admin:deployments_app_target_change", args=[target.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200 and "name" not in page.context["adminform"].form.fields  # fixed once made
    assert admin_client.post(change_url, {"description": "EU edge", "display_order": 7}).status_code == 302
    target.refresh_from_db()
    assert target.description == "EU edge" and target.protected is False
    delete_url = reverse("admin:deployments_app_target_delete", args=[target.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Target.objects.filter(name="edge-eu").exists()
    assert [(e.action, e.via) for e in AuditEvent.objects.filter(object_type="target").order_by("id")] == [
        ("create_target", "admin"),
        ("update_target", "admin"),
        ("delete_target", "admin"),
    ]
    assert admin_client.get(reverse("admin:deployments_app_target_changelist")).status_code == 200


def test_the_admin_refuses_a_name_taken_in_another_case(admin_client):
    response = admin_client.post(reverse("admin:deployments_app_target_add"), {"name": "Staging", "display_order": 1})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Target.objects.filter(name__iexact="staging").count() == 1


def test_the_admin_refuses_to_delete_a_target_with_deployments(admin_client, api, resnet):
    deployed(api, resnet, "v1", "staging")
    staging = Target.objects.get(name="staging")
    response = admin_client.post(reverse("admin:deployments_app_target_delete", args=[staging.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert Target.objects.filter(name="staging").exists()
    bulk = admin_client.post(
        reverse("admin:deployments_app_target_changelist"),
        {"action": "delete_selected", "_selected_action": [staging.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert Target.objects.filter(name="staging").exists()


def test_the_deploy_form_offers_the_known_targets(admin_client, resnet):
    v1 = resnet.versions.get(version="v1")
    page = admin_client.post(
        reverse("admin:models_app_modelversion_changelist"),
        {"action": "deploy_to_target", "_selected_action": [v1.pk], "index": 0},
    )
    choices = list(page.context["form"].fields["target"].choices)
    assert choices[:2] == [("staging", "staging"), ("production", "production (protected)")]
    assert {name for name, _ in choices} == set(Target.objects.values_list("name", flat=True))
    refused = admin_client.post(
        reverse("admin:models_app_modelversion_changelist"),
        {"action": "deploy_to_target", "_selected_action": [v1.pk], "apply": "1", "target": "nowhere"},
    )
    assert refused.status_code == 200 and refused.context["form"].errors["target"]
    assert not Deployment.objects.exists()


# --- Backup and restore ----------------------------------------------------------------------------------
def test_a_restore_brings_back_the_registrys_targets(api, resnet, storage_dir, tmp_path):
    api.post("/targets", {"name": "eu-west", "protected": True, "display_order": 1}, format="json")
    deployed(api, resnet, "v1", "eu-west")
    run("backup", str(tmp_path / "backup"))
    wipe(storage_dir)
    Target.objects.exclude(name__in=["staging", "production"]).delete()  # a new registry has only these

    run("restore", str(tmp_path / "backup"))
    eu_west = Target.objects.get(name="eu-west")
    assert eu_west.protected and eu_west.display_order == 1
    assert Deployment.objects.get().deployment_target_id == "eu-west"


def test_a_snapshot_from_before_targets_restores_with_its_names_folded(api, resnet, storage_dir, tmp_path):
    """A snapshot written before targets were a table: free-text names, two spellings of one target."""
    older = deployed(api, resnet, "v1", "production")
    newer = deployed(api, resnet, "v2", "canary")
    run("backup", str(tmp_path / "backup"))
    [snapshot] = snapshots(destination(str(tmp_path / "backup")))
    path = tmp_path / "backup" / "snapshots" / snapshot / "database.json.gz"
    rows = json.loads(gzip.decompress(path.read_bytes()))
    rows = [row for row in rows if row["model"] != "deployments_app.target"]
    for row in rows:
        if row["model"] == "deployments_app.deployment":
            # Both active on one target under two spellings, as free text allowed.
            row["fields"]["deployment_target"] = "Production" if row["pk"] == older["id"] else "production"
            row["fields"]["deployment_status"] = "active"
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    wipe(storage_dir)
    Target.objects.exclude(name__in=["staging", "production"]).delete()

    run("restore", str(tmp_path / "backup"))
    restored = {d.pk: d for d in Deployment.objects.all()}
    assert {d.deployment_target_id for d in restored.values()} == {"production"}
    assert restored[newer["id"]].deployment_status == "active"
    assert restored[older["id"]].deployment_status == "superseded"
    assert not Target.objects.filter(name="Production").exists()
