"""The admin's experiment pages (issue #11): the weights and live results on the page, the life actions
and the conclude action, which shows the verdict before it deploys."""

from __future__ import annotations

import pytest

from deployments_app import experiments
from deployments_app.models import Deployment, DeploymentStatus, Experiment
from registry_site.permissions import Operator
from tests.test_admin import act, confirm, url

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


def test_the_page_shows_weights_and_results(admin_client, experiment):
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    experiments.report_results(
        experiment=experiment,
        batches=[
            {"variant": "control", "exposures": 5000, "conversions": 500},
            {"variant": "candidate", "exposures": 5000, "conversions": 600},
        ],
    )
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
    page = act(admin_client, CHANGELIST, "conclude", [experiment]).content.decode()
    assert "Verdict: Not enough data" in page and 'value="candidate"' in page
    assert Experiment.objects.get().state == "paused"  # nothing happens before the operator confirms
    response = confirm(admin_client, CHANGELIST, "conclude", [experiment], winner="candidate", make_default="on")
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
