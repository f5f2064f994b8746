"""manage.py alerts: the alerts, newest first, with GET /alerts's filters, and acknowledging one, through
the service the API uses (deployments_app.alerts)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from deployments_app import alerts
from deployments_app.models import Alert
from models_app import metric_history
from registry_site.models import AuditEvent
from registry_site.permissions import Operator
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("alerts", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def firing(world) -> Alert:
    metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.95, "source": "prod"}])
    alerts.create_rule(
        model=world.model,
        values={"name": "floor", "metric": "accuracy", "window_points": 1, "condition": "below", "threshold": 0.9},
        acting_user=Operator(),
    )
    metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.5, "source": "prod"}])
    alerts.evaluate_all()
    return Alert.objects.get()


def test_list_filters_as_the_api_does(firing, api):
    line = run("list", "--state", "firing").splitlines()
    assert len(line) == 1 and line[0].startswith(f"{firing.pk}\tfiring\twarning\tresnet:v1\tfloor\t")
    assert "not acknowledged" in line[0] and firing.reason in line[0]
    assert run("--state", "resolved") == ""
    assert json.loads(run("list", "--model", "resnet", "--json")) == api.get("/alerts?model=resnet").json()["results"]
    assert run("--model", "spare") == ""


def test_acknowledge_records_who_and_is_audited(firing):
    out = run("acknowledge", str(firing.pk))
    firing.refresh_from_db()
    assert firing.acknowledged_by.endswith("(shell)") and firing.acknowledged_at is not None
    assert firing.state == "firing" and f"acknowledged by {firing.acknowledged_by}" in out
    event = AuditEvent.objects.get(action="acknowledge_alert")
    assert event.via == "command" and event.actor.endswith("(shell)")
    assert_argument_error("alerts", ["acknowledge", str(firing.pk)], "was acknowledged by")
    assert AuditEvent.objects.filter(action="acknowledge_alert").count() == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--state", "burning"], '--state: "burning" is not a valid choice; use one of: firing, resolved'),
        (["--acknowledged", "maybe"], "--acknowledged"),
        (["acknowledge"], "alerts acknowledge ID"),
        (["acknowledge", "999"], "Alert 999 not found"),
        (["list", "7"], "takes no id"),
    ],
)
def test_refusals_name_what_is_wrong(firing, args, match):
    assert_argument_error("alerts", args, match)
    firing.refresh_from_db()
    assert firing.acknowledged_at is None
