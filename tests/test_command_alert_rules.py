"""manage.py alert_rules: a model's performance alert rules from the shell, through the service the API
uses (deployments_app.alerts): the same checks, the same refusals, the same audit events."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from deployments_app.models import AlertRule
from models_app import metric_history
from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db

FLOOR = ["--name", "accuracy floor", "--metric", "accuracy", "--condition", "below", "--threshold", "0.8"]


@pytest.fixture
def world(world):
    """The conftest's registry, its v1 with an accuracy: a rule must name a metric the model has."""
    metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.93}])
    return world


def run(*args: str) -> str:
    out = StringIO()
    call_command("alert_rules", *args, stdout=out)
    return out.getvalue()


def test_create_list_update_and_delete_a_rule(world, api):
    created = run("create", "resnet", *FLOOR, "--window-minutes", "30", "--min-points", "20", "--target", "production")
    rule = AlertRule.objects.get()
    assert created.startswith(f"Created alert rule {rule.pk}: resnet\taccuracy floor\tavg accuracy over last 30 min")
    assert (rule.threshold, rule.window_minutes, rule.min_points, rule.target.name) == (0.8, 30, 20, "production")
    event = AuditEvent.objects.get(action="create_alert_rule")
    assert event.actor.endswith("(shell)") and event.via == "command" and event.changes["threshold"] == 0.8
    assert rule.created_by.endswith("(shell)")

    listed = json.loads(run("list", "resnet", "--json"))
    assert listed == api.get("/models/resnet/alert-rules").json()["results"]
    assert run("list").splitlines()[0].startswith(f"{rule.pk}\tresnet\taccuracy floor")

    run("update", "resnet", str(rule.pk), "--threshold", "0.75", "--severity", "critical", "--disabled")
    rule.refresh_from_db()
    assert (rule.threshold, rule.severity, rule.enabled) == (0.75, "critical", False)
    changes = AuditEvent.objects.get(action="update_alert_rule").changes
    assert changes["threshold"] == [0.8, 0.75] and changes["enabled"] == [True, False]

    assert run("delete", "resnet", str(rule.pk)) == f"Deleted alert rule {rule.pk} (accuracy floor) of resnet.\n"
    assert not AlertRule.objects.exists() and AuditEvent.objects.filter(action="delete_alert_rule").count() == 1


def test_create_prints_the_api_body_with_json(world, api):
    body = json.loads(run("create", "resnet", *FLOOR, "--window-points", "5", "--json"))
    assert body == api.get(f"/models/resnet/alert-rules/{body['id']}").json()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["create", "resnet", *FLOOR[:4], "--condition", "below", "--threshold", "0.8"], "window"),
        (
            [
                "create",
                "resnet",
                "--name",
                "x",
                "--metric",
                "auc",
                "--condition",
                "above",
                "--threshold",
                "1",
                "--window-points",
                "3",
            ],
            "metric: No version of 'resnet' has a metric 'auc'",
        ),
        (["create", "resnet", *FLOOR, "--window-points", "3", "--aggregate", "median"], "aggregate"),
        (["create", "resnet", *FLOOR, "--window-points", "3", "--target", "nowhere"], "target"),
        (["create", "resnet", "--name", "x", "--metric", "accuracy"], "needs --condition"),
        (["create", "nope", *FLOOR, "--window-points", "3"], "nope"),
        (["update", "resnet", "99"], "has no alert rule 99"),
        (["delete", "resnet"], "MODEL ID"),
        (["list", "resnet", "--threshold", "1"], "no rule settings"),
        (["create", "resnet", *FLOOR, "--window-points", "three"], "invalid int value"),
        (
            ["create", "resnet", *FLOOR[:6], "--threshold", "nan", "--window-points", "3"],
            "threshold: Must be a finite number, not NaN or infinity",
        ),
    ],
)
def test_refusals_name_what_is_wrong_and_write_nothing(world, args, match):
    assert_argument_error("alert_rules", args, match)
    assert not AlertRule.objects.exists()
    assert not AuditEvent.objects.filter(action__endswith="alert_rule").exists()


def test_a_second_rule_of_the_same_name_is_refused(world):
    run("create", "resnet", *FLOOR, "--window-points", "3")
    assert_argument_error("alert_rules", ["create", "resnet", *FLOOR, "--window-points", "9"], "named 'accuracy floor'")
    assert AlertRule.objects.get().window_points == 3
