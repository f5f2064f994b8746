"""The admin's experiment pages (issue #11): the weights and live results on the page, the life actions
and the conclude action, which shows the verdict before it deploys."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission

from deployments_app import experiments
from deployments_app import services as deployment_services
from deployments_app.models import Deployment, DeploymentStatus, Experiment
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.conftest import user_with_role
from tests.test_admin import act, flashed, url
from tests.test_experiments import state

pytestmark = pytest.mark.django_db
CHANGELIST = "deployments_app_experiment_changelist"


@pytest.fixture
def experiment(world) -> Experiment:
    made = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="admin test",
        variants=[
            experiments.VariantSpec("v1", 5000, "control", is_control=True),
            experiments.VariantSpec("v2", 5000, "candidate"),
        ],
        acting_user=Operator(),
        min_samples=10,
    )
    return made


def report_a_better_candidate(experiment: Experiment) -> None:
    experiments.report_results(
        experiment=experiment,
        batches=[
            {"variant": "control", "exposures": 5000, "conversions": 500},
            {"variant": "candidate", "exposures": 5000, "conversions": 600},
        ],
    )


def test_the_page_shows_weights_and_results(admin_client, experiment):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    report_a_better_candidate(experiment)
    assert admin_client.get(url(CHANGELIST)).status_code == 200
    html = admin_client.get(url("deployments_app_experiment_change", experiment.pk)).content.decode()
    assert "control (control)" in html and "[5000, 10000)" in html and "[0, 5000)" in html
    assert "Variant &#x27;candidate&#x27; is better than the control." in html
    assert "0.12" in html  # the candidate's rate


def test_life_actions_and_conclude_with_the_verdict_first(admin_client, experiment, world):
    assert act(admin_client, CHANGELIST, "start", [experiment]).status_code == 302
    assert Experiment.objects.get().state == "running"
    act(admin_client, CHANGELIST, "pause", [experiment])
    assert Experiment.objects.get().state == "paused"
    response = act(admin_client, CHANGELIST, "pause", [experiment])  # illegal: a message, nothing changes
    assert Experiment.objects.get().state == "paused"
    response = act(admin_client, CHANGELIST, "conclude", [experiment])  # the experiment's Conclude… page
    assert response.status_code == 302 and response["Location"] == page("conclude", experiment)
    html = admin_client.get(response["Location"]).content.decode()
    assert "Not enough data" in html and 'value="candidate"' in html
    assert Experiment.objects.get().state == "paused"  # nothing happens before the operator confirms
    response = admin_client.post(page("conclude", experiment), {"winner": "candidate", "make_default": "on"})
    assert response.status_code == 302
    concluded = Experiment.objects.get()
    assert concluded.state == "concluded" and concluded.decision["winner"] == "candidate"
    active = Deployment.objects.get(
        model=world.model, deployment_target="staging", deployment_status=DeploymentStatus.ACTIVE
    )
    assert active.model_version == world.v2
    assert (
        "Winner candidate" in admin_client.get(url("deployments_app_experiment_change", experiment.pk)).content.decode()
    )


# --- The pages that write: add, change weights, the life's buttons, conclude -------------------------
ADD = "deployments_app_experiment_add"


def page(name: str, experiment: Experiment) -> str:
    return url(f"deployments_app_experiment_{name}", experiment.pk)


def add_form(**overrides) -> dict:
    """What the "Add experiment" page posts: the experiment's fields and the variants' rows (the last
    two of four left empty). Weights in percent."""
    data = {
        "model": "resnet",
        "target": "staging",
        "name": "ramp v2",
        "metric": "conversion",
        "metric_kind": "rate",
        "higher_is_better": "on",
        "min_samples": "10",
        "salt": "",
        "variants-TOTAL_FORMS": "4",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "10",
        "variants-0-version": "v1",
        "variants-0-name": "control",
        "variants-0-weight": "90",
        "variants-0-is_control": "on",
        "variants-1-version": "v2",
        "variants-1-name": "candidate",
        "variants-1-weight": "10",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def experiment_events() -> list[str]:
    return list(AuditEvent.objects.filter(object_type="experiment").order_by("id").values_list("action", flat=True))


def test_the_add_page_offers_the_targets_and_rows_for_the_variants(admin_client, world):
    response = admin_client.get(url(ADD), {"model": "resnet"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="resnet"' in html and '<option value="staging">staging</option>' in html
    assert html.count('class="variant-row"') == 4 and "Weights in percent" in html
    assert admin_client.get(url(ADD), {"rows": "10"}).content.decode().count('class="variant-row"') == 10
    assert admin_client.get(url(ADD), {"rows": "x"}).status_code == 200
    # The changelist links to it.
    assert url(ADD) in admin_client.get(url(CHANGELIST)).content.decode()


def test_adding_an_experiment_creates_a_draft_through_the_service(admin_client, world):
    response = admin_client.post(
        url(ADD), add_form(salt="fixed-salt", **{"variants-1-weight": "12.5", "variants-0-weight": "87.5"})
    )
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == page("change", experiment)
    assert (experiment.state, experiment.salt, experiment.created_by, experiment.min_samples) == (
        "draft",
        "fixed-salt",
        "admin",
        10,
    )
    assert [(v.name, v.version.version, v.weight, v.is_control) for v in experiment.variants.all()] == [
        ("control", "v1", 8750, True),
        ("candidate", "v2", 1250, False),
    ]
    assert experiment_events() == ["create_experiment"]
    assert ("success", f"Experiment {experiment.pk} (ramp v2) is draft.") in flashed(response)


def test_adding_with_start_now_starts_it(admin_client, world):
    response = admin_client.post(url(ADD), add_form(start_now="on", **{"variants-1-name": ""}))
    assert response.status_code == 302
    experiment = Experiment.objects.get()
    assert experiment.state == "running" and experiment.salt  # a random salt when none is given
    assert [v.name for v in experiment.variants.all()] == ["control", "v2"]  # the version's string by default
    assert experiment_events() == ["create_experiment", "start_experiment"]


@pytest.mark.parametrize(
    ("overrides", "where", "words"),
    [
        ({"variants-0-weight": "89"}, "variants", "they sum to 9900"),
        ({"variants-0-weight": "101"}, "variants-0-weight", "less than or equal to 100"),
        ({"variants-1-weight": "10.005"}, "variants-1-weight", "no more than 2 decimal places"),
        ({"variants-0-is_control": None}, "variants", "Exactly one variant is the control"),
        ({"variants-1-version": None, "variants-1-name": None, "variants-1-weight": None}, "variants", "2 to 10"),
        ({"variants-1-version": "other"}, "variants", "model 'resnet' has no version 'other'"),
        ({"variants-1-version": "v3"}, "variants", "has no file"),
        ({"variants-1-name": "control"}, "variants", "same name"),
        ({"variants-1-name": "two\nlines"}, "variants-1-name", ""),
        ({"model": "nobody"}, "model", "nobody"),
        ({"target": "mars"}, "target", "Select a valid choice"),
        ({"name": ""}, "name", "required"),
        ({"metric_kind": "median"}, "metric_kind", "Select a valid choice"),
        ({"salt": "a\nb"}, "salt", ""),
    ],
)
def test_a_refused_experiment_is_a_form_error_naming_the_field(
    admin_client, world, make_version, storage_dir, overrides, where, words
):
    make_version(world.spare, "other", data=b"other")  # a version of another model
    before = state(storage_dir)
    response = admin_client.post(url(ADD), add_form(**overrides))
    assert response.status_code == 200
    context = response.context
    if where == "variants":
        errors = context["variant_errors"]
    elif where.startswith("variants-"):
        _, index, field = where.split("-")
        errors = context["variants"].forms[int(index)].errors.get(field, [])
    else:
        errors = context["form"].errors[where]
    assert errors and words in " ".join(errors), (where, errors, context["form"].errors)
    assert state(storage_dir) == before  # nothing written, no audit event
    assert not AuditEvent.objects.filter(object_type="experiment").exists()


def test_a_second_running_experiment_on_the_target_is_refused_on_start_now(admin_client, world, storage_dir):
    assert admin_client.post(url(ADD), add_form(start_now="on")).status_code == 302
    before = state(storage_dir)
    response = admin_client.post(url(ADD), add_form(name="another", start_now="on"))
    assert response.status_code == 200
    assert "one experiment per model and target" in " ".join(response.context["form"].errors["start_now"])
    assert state(storage_dir) == before  # not even the draft: made and started together or not at all


def test_a_variant_the_promotion_policy_refuses_shows_the_failed_checks(admin_client, world, storage_dir):
    from deployments_app.models import Target

    deployment_services.set_policy(target=Target.objects.get(name="staging"), rules={"required_status": "approved"})
    before = state(storage_dir)
    response = admin_client.post(url(ADD), add_form())
    assert response.status_code == 200
    assert "refuses resnet:v2" in " ".join(response.context["variant_errors"])
    assert [check["rule"] for check in response.context["checks"]] == ["status"]
    assert 'class="registry-fail"' in response.content.decode()
    assert state(storage_dir) == before


def test_a_protected_target_refuses_who_may_not_deploy_there(client, world, production):
    user = user_with_role("experimenter", None, password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_experiment", "change_experiment", "view_experiment"])
    )
    client.force_login(user)
    response = client.post(url(ADD), add_form(target="production"))
    assert response.status_code == 200
    assert "deployer role" in " ".join(response.context["form"].errors["target"])
    assert not Experiment.objects.exists()


def test_changing_the_weights(admin_client, experiment, storage_dir):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    control, candidate = experiment.variants.order_by("id")
    weights = page("weights", experiment)
    html = admin_client.get(weights).content.decode()
    assert f'name="variant_{control.pk}" value="50"' in html and "candidate (v2)" in html
    response = admin_client.post(weights, {f"variant_{control.pk}": "80", f"variant_{candidate.pk}": "20"})
    assert response.status_code == 302 and response["Location"] == page("change", experiment)
    assert list(experiment.variants.order_by("id").values_list("weight", flat=True)) == [8000, 2000]
    event = AuditEvent.objects.get(action="set_experiment_weights")
    assert event.changes["weights"] == {"control": [5000, 8000], "candidate": [5000, 2000]}


@pytest.mark.parametrize(
    ("control", "candidate", "where", "words"),
    [
        ("80", "30", None, "they sum to 11000"),
        ("80", "", "candidate", "required"),
        ("80", "-20", "candidate", "greater than or equal to 0"),
    ],
)
def test_refused_weights_are_form_errors_and_change_nothing(
    admin_client, experiment, storage_dir, control, candidate, where, words
):
    first, second = experiment.variants.order_by("id")
    before = state(storage_dir)
    response = admin_client.post(
        page("weights", experiment), {f"variant_{first.pk}": control, f"variant_{second.pk}": candidate}
    )
    assert response.status_code == 200
    form = response.context["form"]
    errors = form.non_field_errors() if where is None else form.errors[f"variant_{second.pk}"]
    assert words in " ".join(errors), form.errors
    assert state(storage_dir) == before


def test_the_weights_of_a_stopped_experiment_cannot_change(admin_client, experiment, storage_dir):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    experiments.stop_experiment(experiment=experiment)
    assert "Change weights" not in admin_client.get(page("change", experiment)).content.decode()
    first, second = experiment.variants.order_by("id")
    before = state(storage_dir)
    response = admin_client.post(
        page("weights", experiment), {f"variant_{first.pk}": "40", f"variant_{second.pk}": "60"}
    )
    assert "it can change weights only when draft or running or paused" in " ".join(
        response.context["form"].non_field_errors()
    )
    assert state(storage_dir) == before


def test_the_pages_buttons_move_the_experiment_through_the_services(admin_client, experiment, world):
    change = page("change", experiment)

    def buttons() -> list[str]:
        return re.findall(r'class="registry-tool-button" name="(\w+)"', admin_client.get(change).content.decode())

    assert buttons() == ["start"]
    assert admin_client.get(page("start", experiment)).status_code == 405  # a button, not a link
    for verb, expected, shown in [
        ("start", "running", ["pause", "stop"]),
        ("pause", "paused", ["resume", "stop"]),
        ("resume", "running", ["pause", "stop"]),
        ("stop", "stopped", []),
    ]:
        response = admin_client.post(page(verb, experiment))
        assert response.status_code == 302 and response["Location"] == change
        assert ("success", f"Experiment {experiment.pk} is {expected}.") in flashed(response)
        assert Experiment.objects.get().state == expected and buttons() == shown
    assert experiment_events() == [
        "create_experiment",
        "start_experiment",
        "pause_experiment",
        "resume_experiment",
        "stop_experiment",
    ]
    response = admin_client.post(page("pause", experiment))  # refused by the service: a message, no change
    assert (
        "error",
        f"Experiment {experiment.pk}: Experiment {experiment.pk} is stopped; it can pause only when running.",
    ) in flashed(response)
    assert Experiment.objects.get().state == "stopped" and len(experiment_events()) == 5


def test_start_is_refused_while_another_experiment_runs_on_the_target(admin_client, experiment, world, storage_dir):
    other = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="first",
        variants=[experiments.VariantSpec("v1", 5000, is_control=True), experiments.VariantSpec("v2", 5000)],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=other, acting_user=Operator())
    before = state(storage_dir)
    response = admin_client.post(page("start", experiment))
    assert any(f"Experiment {other.pk} ('first') is running" in text for _, text in flashed(response))
    assert state(storage_dir) == before


def test_the_conclude_page_shows_the_verdict_first_and_deploys_the_winner(admin_client, experiment, world):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    report_a_better_candidate(experiment)
    assert "Conclude…" in admin_client.get(page("change", experiment)).content.decode()
    html = admin_client.get(page("conclude", experiment)).content.decode()
    verdict = html.index("Variant &#x27;candidate&#x27; is better than the control.")
    assert verdict < html.index("<th>p-value</th>") < html.index('name="winner"')
    assert '<option value="candidate" selected>' in html  # the verdict's winner by default
    assert Experiment.objects.get().state == "running"  # nothing happens before the operator confirms
    response = admin_client.post(page("conclude", experiment), {"winner": "candidate", "make_default": "on"})
    assert response.status_code == 302 and response["Location"] == page("change", experiment)
    concluded = Experiment.objects.get()
    assert concluded.state == "concluded" and concluded.decision["winner"] == "candidate"
    assert concluded.decision["made_default"] is True
    world.v2.refresh_from_db()
    assert world.v2.is_default
    assert (
        Deployment.objects.get(deployment_target="staging", deployment_status=DeploymentStatus.ACTIVE).model_version
        == world.v2
    )
    assert experiment_events()[-1] == "conclude_experiment"
    assert (
        "success",
        f"Experiment {experiment.pk} concluded: candidate is deployed to staging and is the model's default version.",
    ) in flashed(response)
    page_html = admin_client.get(page("change", experiment)).content.decode()
    assert "Conclude…" not in page_html and "registry-tool-button" not in page_html


def test_a_refused_conclusion_is_a_form_error_and_changes_nothing(admin_client, experiment, storage_dir):
    before = state(storage_dir)
    response = admin_client.post(page("conclude", experiment), {"winner": "candidate"})  # still a draft
    assert response.status_code == 200
    assert "it can conclude only when running or paused or stopped" in " ".join(
        response.context["form"].non_field_errors()
    )
    response = admin_client.post(page("conclude", experiment), {"winner": "nobody"})
    assert "Select a valid choice" in " ".join(response.context["form"].errors["winner"])
    assert state(storage_dir) == before


def test_a_winner_the_deploy_refuses_is_an_error_on_the_winner(admin_client, experiment, storage_dir):
    """Concluding deploys through deploy_version: a policy set on the target since the start refuses the
    candidate there, on the winner's field with the failed checks, and the experiment goes on."""
    from deployments_app.models import Target

    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    deployment_services.set_policy(target=Target.objects.get(name="staging"), rules={"required_status": "approved"})
    before = state(storage_dir)
    response = admin_client.post(page("conclude", experiment), {"winner": "candidate"})
    assert response.status_code == 200
    assert "refuses resnet:v2" in " ".join(response.context["form"].errors["winner"])
    assert [check["rule"] for check in response.context["checks"]] == ["status"]
    assert state(storage_dir) == before and Experiment.objects.get().state == "running"


def test_who_may_use_the_experiment_pages(client, experiment, storage_dir):
    viewer = user_with_role("staff-viewer", "viewer", password="x", is_staff=True)
    client.force_login(viewer)
    html = client.get(page("change", experiment)).content.decode()
    assert "control (control)" in html and "registry-tool-button" not in html and "Change weights" not in html
    before = state(storage_dir)
    assert client.get(url(ADD)).status_code == 403
    assert client.post(url(ADD), add_form()).status_code == 403
    for name in ("start", "weights", "conclude"):
        assert client.post(page(name, experiment)).status_code == 403, name
    assert state(storage_dir) == before


def test_the_history_page_lists_the_experiments_audit_events(admin_client, experiment):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    html = admin_client.get(page("history", experiment)).content.decode()
    assert "start_experiment" in html and "create_experiment" in html
