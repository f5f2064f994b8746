"""manage.py experiments: the A/B tests' life through the same services as the API and the admin."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deployments_app.models import Deployment, DeploymentStatus, Experiment
from registry_site.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("experiments", *args, stdout=out)
    return out.getvalue()


def test_an_experiment_from_creation_to_conclusion(world):
    line = run(
        "create", "resnet", "staging", "--name", "try v2", "--variant", "v1=9000,control", "--variant", "v2=1000"
    )
    pk = int(line.split("\t")[0])
    assert line.split("\t")[1:] == ["resnet", "staging", "draft", "try v2", "v1=v1:9000*, v2=v2:1000\n"]
    assert run("start", str(pk)).split("\t")[3] == "running"
    assert "v2=v2:2000" in run("weights", str(pk), "v1=8000", "v2=2000")
    assert run("pause", str(pk)).split("\t")[3] == "paused"
    assert run("resume", str(pk)).split("\t")[3] == "running"
    assert run().splitlines() == run("list", "resnet", "--target", "STAGING").splitlines()
    results = json.loads(run("results", str(pk)))
    assert results["verdict"].startswith("Not enough data")
    assert run("conclude", str(pk), "--winner", "v2", "--make-default").split("\t")[3] == "concluded"
    active = Deployment.objects.get(
        model=world.model, deployment_target="staging", deployment_status=DeploymentStatus.ACTIVE
    )
    assert active.model_version == world.v2
    assert {e.via for e in AuditEvent.objects.filter(object_type="experiment")} == {"command"}
    assert run(
        "create", "resnet", "canary", "--name", "b", "--variant", "v1=5000,control", "--variant", "v2=5000", "--mean"
    )


def test_refusals_are_command_errors_that_change_nothing(world):
    with pytest.raises(CommandError, match="sum to 9000"):
        run("create", "resnet", "staging", "--name", "x", "--variant", "v1=8000,control", "--variant", "v2=1000")
    with pytest.raises(CommandError, match="NAME=WEIGHT"):
        run("create", "resnet", "staging", "--name", "x", "--variant", "v1")
    with pytest.raises(CommandError, match="Give the experiment's id"):
        run("start")
    with pytest.raises(CommandError, match="Experiment 999 not found"):
        run("stop", "999")
    pk = run(
        "create", "resnet", "staging", "--name", "x", "--variant", "v1=5000,control", "--variant", "v2=5000"
    ).split("\t")[0]
    with pytest.raises(CommandError, match="can stop only when running or paused"):
        run("stop", pk)
    with pytest.raises(CommandError, match="Give the winner"):
        run("conclude", pk)
    assert Experiment.objects.get().state == "draft"
