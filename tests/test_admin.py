"""The admin console: every table browsable, and every change made through the same services as the API,
with the services' refusals shown as messages or form errors (never a 500)."""

from __future__ import annotations

import functools

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments_app import services as deployment_services
from deployments_app.models import Deployment, DeploymentStatus
from models_app import services
from models_app.models import Artifact, ModelVersion, RegisteredModel, VersionStatus
from registry_site.permissions import Operator
from tests.conftest import sha256, stored_files, upload

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def flashed(response) -> list[tuple[str, str]]:
    """(level, text) of the messages a response queued for the next page."""
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def change_form_data(client, change_url: str) -> dict:
    """What a browser would post back from a change page left as it is: the form's current values and
    the inlines' management forms."""
    response = client.get(change_url)
    assert response.status_code == 200
    data = {"_save": "Save"}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    for form in forms:
        for field in form:
            value = field.value()
            if value is not None and value is not False:
                data[field.html_name] = value
                if field.field.show_hidden_initial:  # a field whose model default is a callable
                    data[field.html_initial_name] = value
    return data


def act(client, changelist: str, action: str, objects, **extra):
    """Run an admin action on `objects` as the changelist's "Go" button does."""
    return client.post(
        url(changelist),
        {"action": action, "_selected_action": [o.pk for o in objects], "index": 0, **extra},
    )


def confirm(client, changelist: str, action: str, objects, **fields):
    """Submit an action's intermediate form (target, reason)."""
    return client.post(
        url(changelist),
        {"action": action, "_selected_action": [o.pk for o in objects], "apply": "1", **fields},
    )


def spy(monkeypatch, module, name: str) -> list[dict]:
    """Record the keyword arguments of every call to module.name while still calling it."""
    calls: list[dict] = []
    real = getattr(module, name)

    @functools.wraps(real)
    def wrapper(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.fixture
def deployed(make_model, make_version):
    """A model whose v1 was deployed to production, then superseded there by v2 (the default is v1)."""
    model = make_model(name="resnet")
    v1 = make_version(model, "v1", data=b"one")
    v2 = make_version(model, "v2", data=b"two")
    first = deployment_services.deploy_version(
        version=v1, target="production", acting_user=Operator(), deployed_by="ci"
    ).deployment
    second = deployment_services.deploy_version(
        version=v2, target="production", acting_user=Operator(), deployed_by="ci"
    ).deployment
    return model, v1, v2, first, second


def reload(obj):
    obj.refresh_from_db()
    return obj


# --- Browsing -------------------------------------------------------------------------------------
def test_superuser_sees_every_changelist_and_change_page(admin_client, deployed):
    model, v1, v2, first, second = deployed
    pages = [
        url("index"),
        url("models_app_registeredmodel_changelist"),
        url("models_app_registeredmodel_change", model.pk),
        url("models_app_registeredmodel_add"),
        url("models_app_modelversion_changelist"),
        url("models_app_modelversion_change", v1.pk),
        url("models_app_modelversion_add"),
        url("deployments_app_deployment_changelist"),
        url("deployments_app_deployment_change", first.pk),
        url("models_app_artifact_changelist"),
        url("models_app_artifact_change", v1.artifact_id),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page


def test_the_admins_static_files_are_served_with_debug_off(client, settings):
    # No URL pattern serves /static/ with DEBUG off: this answer can only come from whitenoise.
    assert settings.DEBUG is False
    settings.WHITENOISE_AUTOREFRESH = False  # as in production: files listed once, at start
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"--header-bg" in b"".join(response.streaming_content)


def test_model_list_shows_type_and_links_the_default_version(admin_client, deployed):
    model, v1, *_ = deployed
    response = admin_client.get(url("models_app_registeredmodel_changelist"))
    html = response.content.decode()
    assert "resnet" in html and "classification" in html
    assert f'<a href="{url("models_app_modelversion_change", v1.pk)}">v1</a>' in html


def test_version_list_shows_size_metrics_and_targets(admin_client, deployed):
    """The sha256 is on each version's page and searchable by prefix: the list keeps to 1400 px."""
    model, v1, v2, *_ = deployed
    html = admin_client.get(url("models_app_modelversion_changelist")).content.decode()
    assert '<td class="field-other_metrics">-</td>' in html
    assert '<span title="3 bytes">3\xa0bytes</span>' in html
    assert '<td class="field-deployed_to">production</td>' in html


def test_version_list_filters_and_search(admin_client, make_model, make_version):
    vision = make_model(name="vision", model_type="classification")
    audio = make_model(name="speech", model_type="audio")
    make_version(vision, "v1")
    make_version(audio, "a1", status="approved")
    changelist = url("models_app_modelversion_changelist")

    def versions(query: dict) -> set[str]:
        response = admin_client.get(changelist, query)
        assert response.status_code == 200
        return {str(v) for v in response.context["cl"].result_list}

    assert versions({"model__model_type__exact": "audio"}) == {"speech:a1"}
    assert versions({"status__exact": "approved"}) == {"speech:a1"}
    assert versions({"q": "vision"}) == {"vision:v1"}
    assert versions({"model__id__exact": vision.pk}) == {"vision:v1"}


def test_changelists_do_not_count_the_whole_table(admin_client, deployed):
    changelists = [url(f"models_app_{name}_changelist") for name in ("registeredmodel", "modelversion", "artifact")]
    for changelist in [*changelists, url("deployments_app_deployment_changelist")]:
        response = admin_client.get(changelist, {"q": "zzz-nothing", "_facets": "True"})
        assert response.status_code == 200
        # Neither "N results (M total)" nor the filters' per-option counts.
        assert response.context["cl"].show_full_result_count is False, changelist
        assert response.context["cl"].add_facets is False, changelist


def test_version_list_costs_the_same_queries_for_few_or_many_rows(admin_client, make_model, make_version):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url("models_app_modelversion_changelist")).status_code == 200
        return len(captured.captured_queries)

    model = make_model()
    make_version(model, "v1", data=b"1")
    few = queries()
    for i in range(2, 8):
        version = make_version(make_model(), f"v{i}", data=str(i).encode())
        deployment_services.deploy_version(version=version, target="staging", acting_user=Operator())
    assert queries() == few


def test_version_form_finds_models_by_name(admin_client, make_model):
    make_model(name="alpha")
    make_model(name="beta")
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "models_app", "model_name": "modelversion", "field_name": "model", "term": "alp"},
    )
    assert [item["text"] for item in response.json()["results"]] == ["alpha"]


def test_model_page_shows_its_latest_versions_and_deployments_with_links(admin_client, deployed):
    model, v1, v2, *_ = deployed
    response = admin_client.get(url("models_app_registeredmodel_change", model.pk))
    html = response.content.decode()
    assert f'<a href="{url("models_app_modelversion_change", v2.pk)}">v2</a>' in html
    # A read-only slice, not an inline: nothing on this page edits versions.
    assert response.context["inline_admin_formsets"] == []
    assert f"{url('models_app_modelversion_changelist')}?model__id__exact={model.pk}" in html
    assert "<td>production</td>" in html


def test_version_page_shows_its_deployments_and_readonly_file_facts(admin_client, deployed):
    model, v1, *_ = deployed
    response = admin_client.get(url("models_app_modelversion_change", v1.pk))
    html = response.content.decode()
    assert f"<code>{sha256(b'one')}</code>" in html
    assert v1.file_path in html
    form = response.context["adminform"].form
    # Readonly on an existing version: its string, its model and its file.
    assert not {"version", "model", "file", "is_default"} & set(form.fields)
    deployment = Deployment.objects.get(model_version=v1)
    assert f'<a href="{url("deployments_app_deployment_change", deployment.pk)}">#{deployment.pk}</a>' in html
    assert f"{url('deployments_app_deployment_changelist')}?model_version__id__exact={v1.pk}" in html
    assert response.context["inline_admin_formsets"] == []


# --- Models through the services ------------------------------------------------------------------
def test_adding_a_model_calls_create_model(admin_client, monkeypatch):
    calls = spy(monkeypatch, services, "create_model")
    response = admin_client.post(
        url("models_app_registeredmodel_add"),
        {"name": "mobilenet_v3", "model_type": "classification", "description": "MobileNet", "is_active": "on"},
    )
    assert response.status_code == 302
    model = RegisteredModel.objects.get(name="mobilenet_v3")
    assert response["Location"] == url("models_app_registeredmodel_changelist")
    assert calls == [
        {
            "name": "mobilenet_v3",
            "model_type": "classification",
            "description": "MobileNet",
            "is_active": True,
            "readme": "",
            "metric_directions": {},
        }
    ]
    assert model.description == "MobileNet"


def test_adding_a_model_with_a_taken_or_bad_name_is_a_form_error(admin_client, make_model):
    make_model(name="taken")
    for name in ("taken", ".hidden", "a/b"):
        response = admin_client.post(url("models_app_registeredmodel_add"), {"name": name, "model_type": "audio"})
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["name"]
    assert RegisteredModel.objects.count() == 1


def test_a_models_name_cannot_be_changed_but_its_description_can(admin_client, make_model, monkeypatch):
    model = make_model(name="keep")
    calls = spy(monkeypatch, services, "update_model")
    change = url("models_app_registeredmodel_change", model.pk)
    data = change_form_data(admin_client, change)
    data.update(name="renamed", description="new words")
    assert admin_client.post(change, data).status_code == 302
    model.refresh_from_db()
    assert (model.name, model.description) == ("keep", "new words")
    assert calls == [{"model": model, "changes": {"description": "new words"}}]


def test_deleting_a_model_with_an_active_deployment_is_refused(admin_client, deployed):
    model, *_ = deployed
    response = admin_client.post(url("models_app_registeredmodel_delete", model.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url("models_app_registeredmodel_change", model.pk)
    refusal = "Model 'resnet' has an active deployment; roll it back before deleting the model."
    assert ("error", refusal) in flashed(response)
    assert RegisteredModel.objects.filter(pk=model.pk).exists()
    assert Deployment.objects.count() == 2


def test_deleting_a_model_without_active_deployment_takes_its_history(admin_client, deployed, monkeypatch):
    model, v1, v2, first, second = deployed
    deployment_services.rollback_deployment(deployment=second)
    deployment_services.rollback_deployment(deployment=first)
    calls = spy(monkeypatch, services, "delete_model")
    delete = url("models_app_registeredmodel_delete", model.pk)
    confirmation = admin_client.get(delete)
    # Deployments are read-only in the admin, but that must not block deleting their model.
    assert not confirmation.context["perms_lacking"] and not confirmation.context["protected"]
    response = admin_client.post(delete, {"post": "yes"})
    assert response.status_code == 302
    assert [c["model"].pk for c in calls] == [model.pk]
    assert not RegisteredModel.objects.exists() and not ModelVersion.objects.exists()
    assert not Deployment.objects.exists()


# --- Versions: add and change through the services -----------------------------------------------
def test_adding_a_version_with_a_file_registers_it(admin_client, make_model, storage_dir, monkeypatch):
    model = make_model(name="detector")
    calls = spy(monkeypatch, services, "register_version")
    response = admin_client.post(
        url("models_app_modelversion_add"),
        {
            "model": model.pk,
            "version": "v1.0.0",
            "format": "onnx",
            "status": "testing",
            "accuracy": "0.91",
            "input_shape": "[1, 3, 224, 224]",
            "output_shape": "[1, -1]",
            "training_config": '{"epochs": 90}',
            "file": upload(b"detector-weights", name="../../det ector.onnx"),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    version = ModelVersion.objects.select_related("artifact").get(model=model, version="v1.0.0")
    assert len(calls) == 1
    assert version.checksum == sha256(b"detector-weights") and version.file_size == 16
    assert version.file_name == "det_ector.onnx"
    assert version.is_default and version.status == "testing" and version.accuracy == 0.91
    assert version.input_shape == [1, 3, 224, 224] and version.training_config == {"epochs": 90}
    assert [p.name for p in stored_files(storage_dir)] == [sha256(b"detector-weights")]


def test_adding_a_version_refused_by_the_service_keeps_the_form(admin_client, make_model, storage_dir):
    model = make_model()
    response = admin_client.post(
        url("models_app_modelversion_add"),
        {"model": model.pk, "version": "latest", "format": "onnx", "status": "training", "release_notes": "kept"},
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["version"] == ["'latest' is reserved and cannot be a version."]
    assert form["release_notes"].value() == "kept"
    assert not ModelVersion.objects.exists()


def test_adding_a_version_whose_file_does_not_match_the_expected_sha256_stores_nothing(
    admin_client, make_model, storage_dir
):
    model = make_model()
    response = admin_client.post(
        url("models_app_modelversion_add"),
        {
            "model": model.pk,
            "version": "v1",
            "format": "onnx",
            "status": "training",
            "file": upload(b"actual"),
            "sha256": sha256(b"expected"),
        },
    )
    assert response.status_code == 200
    assert "nothing was stored" in response.context["adminform"].form.errors["sha256"][0]
    assert not ModelVersion.objects.exists() and not Artifact.objects.exists()
    assert stored_files(storage_dir) == []


def test_editing_a_version_goes_through_update_version(admin_client, make_version, monkeypatch):
    version = make_version(release_notes="old")
    calls = spy(monkeypatch, services, "update_version")
    change = url("models_app_modelversion_change", version.pk)
    data = change_form_data(admin_client, change)
    data.update(accuracy="0.5", release_notes="new", version="hacked")
    response = admin_client.post(change, data)
    assert response.status_code == 302
    version.refresh_from_db()
    assert (version.version, version.accuracy, version.release_notes) == ("v1", 0.5, "new")
    assert len(calls) == 1 and calls[0]["changes"] == {"accuracy": 0.5, "release_notes": "new"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accuracy", "1.5"),
        ("accuracy", "nan"),
        ("f1_score", "1e400"),
        ("input_shape", "[1, 0]"),
        ("input_shape", '{"a": 1}'),
        ("training_config", "[1, 2]"),
        ("training_config", '{"lr": NaN}'),
        ("deployment_config", "[" * 50_000 + "]" * 50_000),
        ("release_notes", "x" * 100_001),
    ],
)
def test_invalid_version_values_are_form_errors(admin_client, make_version, field, value):
    version = make_version()
    change = url("models_app_modelversion_change", version.pk)
    data = change_form_data(admin_client, change)
    data[field] = value
    response = admin_client.post(change, data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    fresh = ModelVersion.objects.get(pk=version.pk)
    assert getattr(fresh, field) == getattr(version, field)


def test_archiving_the_default_in_the_change_form_is_refused(admin_client, make_version):
    version = make_version()
    change = url("models_app_modelversion_change", version.pk)
    data = change_form_data(admin_client, change)
    data.update(status="archived", release_notes="should not be saved either")
    response = admin_client.post(change, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["status"] == [
        "Version 'v1' is the default; make another version the default before archiving it."
    ]
    version.refresh_from_db()
    assert version.status == "training" and version.release_notes == ""


def test_make_default_in_the_change_form_clears_the_old_default(admin_client, make_model, make_version):
    model = make_model()
    v1, v2 = make_version(model, "v1"), make_version(model, "v2")
    change = url("models_app_modelversion_change", v2.pk)
    data = change_form_data(admin_client, change)
    data["make_default"] = "on"
    assert admin_client.post(change, data).status_code == 302
    assert reload(v2).is_default and not reload(v1).is_default


def test_a_file_can_be_attached_once_from_the_change_form(admin_client, make_version):
    version = make_version(data=None)
    change = url("models_app_modelversion_change", version.pk)
    data = change_form_data(admin_client, change)
    data["file"] = upload(b"late weights")
    assert admin_client.post(change, data).status_code == 302
    assert reload(version).checksum == sha256(b"late weights")
    # With its file attached, the change form no longer offers a file field.
    assert "file" not in admin_client.get(change).context["adminform"].form.fields


# --- Version actions ----------------------------------------------------------------------------------
def test_make_default_action_clears_the_old_default(admin_client, make_model, make_version, monkeypatch):
    model = make_model()
    v1, v2 = make_version(model, "v1"), make_version(model, "v2")
    calls = spy(monkeypatch, services, "set_default_version")
    response = act(admin_client, "models_app_modelversion_changelist", "make_default", [v2])
    assert response.status_code == 302
    assert reload(v2).is_default and not reload(v1).is_default
    assert [c["version"].pk for c in calls] == [v2.pk]
    done = f"Made {model.name}:v2 the default version of {model.name} (instead of v1)."
    assert ("success", done) in flashed(response)


def test_make_default_action_needs_exactly_one_version(admin_client, make_model, make_version):
    model = make_model()
    v1, v2 = make_version(model, "v1"), make_version(model, "v2")
    response = act(admin_client, "models_app_modelversion_changelist", "make_default", [v1, v2])
    assert ("error", "Select exactly one version to make it its model's default.") in flashed(response)
    assert reload(v1).is_default and not reload(v2).is_default


def test_make_default_action_refuses_an_archived_version(admin_client, make_model, make_version):
    model = make_model()
    v1, v2 = make_version(model, "v1"), make_version(model, "v2", status="archived")
    response = act(admin_client, "models_app_modelversion_changelist", "make_default", [v2])
    assert ("error", "Version 'v2' is archived and cannot be the default.") in flashed(response)
    assert reload(v1).is_default and not reload(v2).is_default


def test_archive_action_refuses_the_default_and_changes_nothing(admin_client, make_version):
    version = make_version()
    response = act(admin_client, "models_app_modelversion_changelist", "archive", [version])
    assert response.status_code == 302
    messages = flashed(response)
    refusal = "Version 'v1' is the default; make another version the default before archiving it."
    assert messages == [("error", f"{version.model.name}: {refusal}")]
    version.refresh_from_db()
    assert version.status == "training" and version.is_default


def test_archive_action_archives_what_it_may_and_names_what_it_may_not(admin_client, deployed, make_version):
    model, v1, v2, first, second = deployed
    v3 = make_version(model, "v3", data=b"three")
    response = act(admin_client, "models_app_modelversion_changelist", "archive", [v2, v3])
    assert reload(v3).status == VersionStatus.ARCHIVED
    assert reload(v2).status == VersionStatus.TRAINING
    assert flashed(response) == [
        ("error", "resnet: Version 'v2' is deployed; roll it back before archiving it."),
        ("success", "Archived resnet:v3."),
    ]


def test_deploy_action_asks_for_the_target_then_deploys(
    admin_client, admin_user, make_model, make_version, monkeypatch
):
    model = make_model(name="clf")
    v1 = make_version(model, "v1")
    form_page = act(admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v1])
    assert form_page.status_code == 200
    assert form_page.templates[0].name == "admin/registry_action_form.html"
    html = form_page.content.decode()
    assert 'name="target"' in html and f'name="_selected_action" value="{v1.pk}"' in html
    assert not Deployment.objects.exists()

    calls = spy(monkeypatch, deployment_services, "deploy_version")
    response = confirm(
        admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v1], target="production"
    )
    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert (deployment.model_version_id, deployment.deployment_target_id) == (v1.pk, "production")
    assert deployment.deployment_status == DeploymentStatus.ACTIVE
    assert deployment.deployed_by == admin_user.username
    assert calls == [
        {"version": v1, "target": "production", "acting_user": admin_user, "deployed_by": admin_user.username}
    ]
    assert ("success", f"Deployed clf:v1 to production (deployment #{deployment.pk}).") in flashed(response)

    again = confirm(admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v1], target="production")
    assert ("info", "clf:v1 is already active on production; nothing changed.") in flashed(again)
    assert Deployment.objects.count() == 1


def test_deploy_action_supersedes_the_active_deployment(admin_client, make_model, make_version):
    model = make_model()
    v1, v2 = make_version(model, "v1", data=b"1"), make_version(model, "v2", data=b"2")
    confirm(admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v1], target="staging")
    confirm(admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v2], target="staging")
    statuses = dict(Deployment.objects.values_list("model_version__version", "deployment_status"))
    assert statuses == {"v1": "superseded", "v2": "active"}


def test_deploy_action_refuses_a_bad_target_with_the_form_again(admin_client, make_version):
    version = make_version()
    response = confirm(
        admin_client, "models_app_modelversion_changelist", "deploy_to_target", [version], target="../prod"
    )
    assert response.status_code == 200
    assert response.context["form"].errors["target"]
    assert not Deployment.objects.exists()


def test_deploy_action_reports_versions_the_service_refuses(admin_client, make_model, make_version):
    no_file = make_version(make_model(name="nofile"), "v1", data=None)
    archived = make_version(make_model(name="old"), "v1", status="archived")
    good = make_version(make_model(name="good"), "v1")
    response = confirm(
        admin_client, "models_app_modelversion_changelist", "deploy_to_target", [no_file, archived, good], target="edge"
    )
    messages = dict((text.split(":")[0], (level, text)) for level, text in flashed(response))
    assert messages["nofile"][0] == "error" and "has no file" in messages["nofile"][1]
    assert messages["old"] == ("error", "old: Version 'v1' is archived and cannot be deployed.")
    assert messages["Deployed good"][0] == "success"
    assert list(Deployment.objects.values_list("model_version", flat=True)) == [good.pk]


def test_deploy_action_refuses_two_versions_of_one_model(admin_client, make_model, make_version):
    model = make_model(name="twice")
    v1, v2 = make_version(model, "v1"), make_version(model, "v2")
    response = confirm(admin_client, "models_app_modelversion_changelist", "deploy_to_target", [v1, v2], target="prod")
    assert flashed(response)[0][0] == "error" and "twice" in flashed(response)[0][1]
    assert not Deployment.objects.exists()


# --- Deleting versions -----------------------------------------------------------------------------
def test_deleting_a_deployed_version_is_refused(admin_client, deployed):
    model, v1, v2, first, second = deployed
    delete = url("models_app_modelversion_delete", v2.pk)
    response = admin_client.post(delete, {"post": "yes"})
    # The deployment history protects the row: Django's confirmation page says so and deletes nothing.
    assert response.status_code == 200
    assert response.context["protected"]
    assert "Cannot delete model version" in response.content.decode()
    assert ModelVersion.objects.filter(pk=v2.pk).exists()


def test_deleting_the_default_version_is_refused_by_the_service(admin_client, make_model, make_version):
    model = make_model()
    v1 = make_version(model, "v1")
    response = admin_client.post(url("models_app_modelversion_delete", v1.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url("models_app_modelversion_change", v1.pk)
    assert (
        "error",
        "Version 'v1' is the default; make another version the default first, or archive it.",
    ) in flashed(response)
    assert ModelVersion.objects.filter(pk=v1.pk).exists()


def test_deleting_a_plain_version_goes_through_delete_version(admin_client, make_model, make_version, monkeypatch):
    model = make_model()
    make_version(model, "v1")
    v2 = make_version(model, "v2")
    calls = spy(monkeypatch, services, "delete_version")
    response = admin_client.post(url("models_app_modelversion_delete", v2.pk), {"post": "yes"})
    assert response.status_code == 302
    assert [c["version"].pk for c in calls] == [v2.pk]
    assert list(ModelVersion.objects.values_list("version", flat=True)) == ["v1"]


def test_bulk_delete_is_all_or_nothing(admin_client, make_model, make_version):
    from django.contrib.admin.models import LogEntry

    model = make_model()
    v1, v2 = make_version(model, "v1"), make_version(model, "v2")
    response = admin_client.post(
        url("models_app_modelversion_changelist"),
        {"action": "delete_selected", "_selected_action": [v2.pk, v1.pk], "post": "yes"},
    )
    assert response.status_code == 302
    level, text = flashed(response)[0]
    assert level == "error" and text.startswith("Nothing was deleted: Version 'v1' is the default")
    assert ModelVersion.objects.count() == 2
    assert not LogEntry.objects.exists()


# --- Deployments ---------------------------------------------------------------------------------------
def test_rollback_action_restores_the_previous_deployment(admin_client, deployed, monkeypatch):
    model, v1, v2, first, second = deployed
    form_page = act(admin_client, "deployments_app_deployment_changelist", "roll_back", [second])
    assert form_page.status_code == 200 and 'name="reason"' in form_page.content.decode()
    assert reload(second).deployment_status == DeploymentStatus.ACTIVE

    calls = spy(monkeypatch, deployment_services, "rollback_deployment")
    response = confirm(
        admin_client, "deployments_app_deployment_changelist", "roll_back", [second], reason="bad latency"
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.deployment_status == DeploymentStatus.ROLLED_BACK
    assert second.rollback_reason == "bad latency" and second.rollback_at is not None
    assert reload(first).deployment_status == DeploymentStatus.ACTIVE
    assert [c["deployment"].pk for c in calls] == [second.pk]
    assert (
        "success",
        f"Rolled back deployment #{second.pk} (resnet:v2 on production); "
        f"v1 (deployment #{first.pk}) is active there again.",
    ) in flashed(response)


def test_rollback_action_without_a_reason_records_who(admin_client, admin_user, deployed):
    *_, second = deployed
    confirm(admin_client, "deployments_app_deployment_changelist", "roll_back", [second], reason="")
    assert reload(second).rollback_reason == f"rolled back from the admin by {admin_user.username}"


def test_rolling_back_the_last_deployment_leaves_the_target_empty(admin_client, make_version):
    version = make_version()
    deployment = deployment_services.deploy_version(version=version, target="edge", acting_user=Operator()).deployment
    response = confirm(admin_client, "deployments_app_deployment_changelist", "roll_back", [deployment])
    assert flashed(response)[0][1].endswith(f"edge has no active deployment of {version.model.name} now.")
    assert not Deployment.objects.filter(deployment_status="active").exists()


def test_rolling_back_a_deployment_that_is_not_active_is_refused(admin_client, deployed):
    model, v1, v2, first, second = deployed
    response = confirm(admin_client, "deployments_app_deployment_changelist", "roll_back", [first])
    level, text = flashed(response)[0]
    assert level == "error" and "is superseded, not active" in text
    assert reload(first).deployment_status == DeploymentStatus.SUPERSEDED
    assert reload(second).deployment_status == DeploymentStatus.ACTIVE


def test_deployment_history_is_read_only(admin_client, deployed):
    *_, first, second = deployed
    change = url("deployments_app_deployment_change", second.pk)
    page = admin_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(change, {"deployment_target": "elsewhere"}).status_code == 403
    assert admin_client.get(url("deployments_app_deployment_add")).status_code == 403
    assert admin_client.post(url("deployments_app_deployment_delete", second.pk), {"post": "yes"}).status_code == 403
    assert reload(second).deployment_target_id == "production"
    actions = admin_client.get(url("deployments_app_deployment_changelist")).context["action_form"].fields["action"]
    assert [name for name, _ in actions.choices if name] == ["roll_back"]


def test_artifacts_are_read_only(admin_client, make_version):
    version = make_version()
    change = url("models_app_artifact_change", version.artifact_id)
    assert 'name="_save"' not in admin_client.get(change).content.decode()
    assert admin_client.post(change, {"size": "1"}).status_code == 403
    assert admin_client.get(url("models_app_artifact_add")).status_code == 403
    assert admin_client.post(url("models_app_artifact_delete", version.artifact_id), {"post": "yes"}).status_code == 403
    assert Artifact.objects.get().size == len(b"weights")


# --- Personas -------------------------------------------------------------------------------------
def test_staff_without_deploy_permission_does_not_get_the_deploy_action(client, django_user_model, make_version):
    version = make_version()
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_modelversion", "change_modelversion", "view_registeredmodel"])
    )
    client.force_login(viewer)
    response = client.get(url("models_app_modelversion_changelist"))
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices if name]
    assert actions == ["compare", "make_default", "archive"]
    # Posting the action anyway does nothing.
    confirm(client, "models_app_modelversion_changelist", "deploy_to_target", [version], target="production")
    assert not Deployment.objects.exists()


def test_anonymous_users_are_sent_to_the_login_page(client, make_version):
    response = client.get(url("models_app_modelversion_changelist"))
    assert response.status_code == 302 and response["Location"].startswith(url("login"))


# --- Escaping -----------------------------------------------------------------------------------------
def test_user_text_is_shown_escaped(admin_client, make_model, make_version):
    model = make_model(name="xss", description=XSS)
    version = make_version(model, "v1", release_notes=XSS)
    deployment = deployment_services.deploy_version(version=version, target="prod", acting_user=Operator()).deployment
    deployment_services.rollback_deployment(deployment=deployment, reason=XSS)
    pages = [
        url("models_app_registeredmodel_change", model.pk),
        url("models_app_modelversion_change", version.pk),
        url("deployments_app_deployment_change", deployment.pk),
        url("models_app_registeredmodel_changelist") + "?q=script",
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        assert XSS not in html, page
    for page in pages[:3]:
        assert XSS_ESCAPED in admin_client.get(page).content.decode(), page


def test_version_page_shows_the_format_check(admin_client, api, make_model):
    model = make_model()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "tflite", "file": upload(b"not a flatbuffer")},
        format="multipart",
    )
    assert response.status_code == 201
    page = admin_client.get(f"/admin/models_app/modelversion/{response.json()['id']}/change/")
    assert "failed: no TFL3 FlatBuffer identifier at bytes 4-8" in page.content.decode()
