"""Performance alerts (issue #9 §4) and experiment guardrails (issue #11 §3): rules checked when they are
made, evaluated when points arrive through the real ingest, one event when an alert starts and one when
it ends, the rollback and pause actions, acknowledging, and the webhook events they become."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import (  # noqa: F401  (connection: the skipif condition reads it)
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.utils import timezone

from deployments_app import alerts, experiments
from deployments_app.models import Alert, AlertRule, AlertState, Deployment, DeploymentStatus, ExperimentState
from deployments_app.services import deploy_version
from models_app import metric_history
from registry_site import webhooks
from registry_site.errors import Conflict, Forbidden, InvalidInput
from registry_site.models import AuditEvent, WebhookDelivery
from registry_site.permissions import Operator
from tests.conftest import user_with_role
from tests.live import all_at_once

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="needs PostgreSQL's row locks and concurrent connections"
)


def record(version, values, *, name="accuracy", source="production", minutes_ago=0.0) -> None:
    """Points through the real ingest (models_app.metric_history.record_points), in order, each batch
    after the one before."""
    start = timezone.now() - timedelta(minutes=minutes_ago)
    points = [
        {"name": name, "value": value, "source": source, "timestamp": (start + timedelta(microseconds=i)).isoformat()}
        for i, value in enumerate(values)
    ]
    metric_history.record_points(version=version, points=points)


@pytest.fixture
def ingest(django_capture_on_commit_callbacks, caplog):
    """record(), with what runs once the points commit (the alert evaluation) run as in production; a
    failure there is only logged (on_commit's robust), so the log is checked."""

    def run(*args, **kwargs) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            record(*args, **kwargs)
        failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert not failed, failed

    return run


# The rule most tests make (and the API's tests send): average production accuracy under 0.8 over 30 minutes.
RULE = {
    "name": "accuracy floor",
    "metric": "accuracy",
    "source": "production",
    "aggregate": "avg",
    "window_minutes": 30,
    "condition": "below",
    "threshold": 0.8,
}


def rule(model, **values) -> AlertRule:
    return alerts.create_rule(model=model, values={**RULE, **values}, acting_user=Operator())


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def served(world):
    """resnet's v1 then v2 deployed to production (v2 active, v1 superseded), both with accuracy points."""
    for version in (world.v1, world.v2):
        deploy_version(version=version, target="production", acting_user=Operator())
    record(world.v1, [0.9, 0.9])
    return world


# --- Rules ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, field",
    [
        ({"metric": "auc"}, "metric"),  # no version of the model has it
        ({"metric": "bad name!"}, "metric"),
        ({"threshold": None}, "threshold"),
        ({"window_points": 10}, "window_points"),  # two windows
        ({"window_minutes": None}, "window_points"),  # none
        ({"window_minutes": -5}, "window_minutes"),
        ({"aggregate": "median"}, "aggregate"),
        ({"severity": "panic"}, "severity"),
        ({"condition": "no_data", "window_minutes": None, "window_points": 5, "threshold": None}, "window_minutes"),
        ({"condition": "drop", "threshold": None, "baseline": "previous", "drop_by": 0.1}, "baseline"),
        ({"condition": "drop", "threshold": None, "baseline": "default"}, "drop_by"),
        ({"window_minutes": None, "window_points": 5, "min_points": 6}, "min_points"),
        ({"action": "rollback"}, "target"),
        ({"target": "nowhere"}, "target"),
        ({"source": "no spaces"}, "source"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_rule_names_its_field_and_writes_nothing(served, values, field):
    before = AuditEvent.objects.count()
    with pytest.raises(InvalidInput) as refused:
        rule(served.model, **values)
    assert field in (refused.value.errors or {}), refused.value.errors
    assert not AlertRule.objects.exists() and AuditEvent.objects.count() == before


def test_a_rule_on_a_registered_or_recorded_metric_is_audited(served, make_version):
    made = rule(served.model, target="production", action="rollback", severity="critical")
    assert made.target.name == "production"
    (event,) = events("create_alert_rule")
    assert event.changes["target"] == "production" and event.changes["action"] == "rollback"
    # A metric only a registration set (an open metric) is a metric of the model too.
    make_version(served.model, "v4", metrics='{"auc": 0.9}')
    assert rule(served.model, name="auc", metric="auc").metric == "auc"
    with pytest.raises(Conflict) as taken:
        rule(served.model)
    assert taken.value.field == "name"


def test_a_rule_that_rolls_back_needs_its_author_to_be_allowed_to(served):
    editor = user_with_role("ed", "editor")
    with pytest.raises(Forbidden) as refused:
        alerts.create_rule(
            model=served.model,
            values={
                "name": "x",
                "metric": "accuracy",
                "window_points": 5,
                "condition": "below",
                "threshold": 0.5,
                "target": "production",
                "action": "rollback",
            },
            acting_user=editor,
        )
    assert refused.value.field == "action" and not AlertRule.objects.exists()


# --- The state machine ----------------------------------------------------------------------------
def test_one_event_when_it_starts_firing_and_one_when_it_stops(served, ingest):
    watching = rule(served.model, target="production", window_minutes=None, window_points=3, min_points=3)
    ingest(served.v2, [0.9, 0.9, 0.9])
    assert not Alert.objects.exists()
    ingest(served.v2, [0.5, 0.5, 0.5])
    (alert,) = Alert.objects.all()
    assert (alert.rule, alert.version, alert.state, alert.value) == (watching, served.v2, "firing", 0.5)
    assert alert.reason == "avg accuracy (production) 0.5 < 0.8 over the last 3 points"
    for _ in range(3):  # it keeps breaching: no new alert, no new event
        ingest(served.v2, [0.4])
    assert Alert.objects.count() == 1 and len(events("fire_alert")) == 1
    ingest(served.v2, [0.95, 0.95])  # the last 3 points: 0.4, 0.95, 0.95 -> avg 0.77, still below
    assert Alert.objects.get().state == "firing"
    ingest(served.v2, [0.95])
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None and alert.resolved_value == pytest.approx(0.95)
    ingest(served.v2, [0.99, 0.99])
    fired, resolved = events("fire_alert"), events("resolve_alert")
    assert len(fired) == 1 and len(resolved) == 1
    assert fired[0].object_repr == "resnet:accuracy floor on v2" and fired[0].changes["value"] == 0.5
    # A new breach is a new episode.
    ingest(served.v2, [0.1, 0.1, 0.1])
    assert list(Alert.objects.order_by("id").values_list("state", flat=True)) == ["resolved", "firing"]


def test_too_few_points_decide_nothing_and_other_metrics_or_sources_are_not_evaluated(served, ingest):
    rule(served.model, min_points=3)
    ingest(served.v2, [0.1, 0.1])
    assert not Alert.objects.exists()
    ingest(served.v2, [0.1, 0.1, 0.1], source="canary")  # another source
    ingest(served.v2, [0.1, 0.1, 0.1], name="recall")  # another metric
    assert not Alert.objects.exists()
    ingest(served.v2, [0.1])
    assert Alert.objects.count() == 1


def test_a_rule_with_a_target_watches_only_what_runs_there(served, ingest):
    rule(served.model, target="staging")  # v1 is active on staging (world), v2 is not
    ingest(served.v2, [0.1, 0.1])
    assert not Alert.objects.exists()
    ingest(served.v1, [0.1, 0.1, 0.1, 0.1, 0.1])
    assert Alert.objects.get().version == served.v1


def test_a_drop_against_the_default_follows_the_metric_direction(served, ingest):
    record(served.v1, [0.2] * 3, name="loss_val")
    absolute = rule(served.model, name="drop", condition="drop", threshold=None, baseline="default", drop_by=0.05)
    relative = rule(
        served.model,
        name="relative",
        condition="drop",
        threshold=None,
        baseline="default",
        drop_by=0.2,
        drop_relative=True,
    )
    loss = rule(
        served.model, name="loss", metric="loss_val", condition="drop", threshold=None, baseline="default", drop_by=0.05
    )
    ingest(served.v2, [0.82, 0.82])  # 0.08 below v1's 0.9: more than 0.05, less than 20% of it
    ingest(served.v2, [0.1], name="loss_val")  # a loss going down is better
    assert list(Alert.objects.values_list("rule", flat=True)) == [absolute.pk]
    assert Alert.objects.get().reason.startswith("avg accuracy (production) 0.82 vs 0.9 on v1 (default): worse by 0.08")
    ingest(served.v2, [0.9, 0.9, 0.9], name="loss_val")  # up from 0.2: worse
    assert Alert.objects.filter(rule=loss, state="firing").exists()
    assert not Alert.objects.filter(rule=relative).exists()


def test_a_drop_against_the_previous_version_on_the_target(served, ingest):
    rule(served.model, target="production", condition="drop", threshold=None, baseline="previous", drop_by=0.05)
    ingest(served.v2, [0.83, 0.83])
    alert = Alert.objects.get()
    assert "vs 0.9 on v1 (previous)" in alert.reason


# --- Actions --------------------------------------------------------------------------------------
def test_rollback_rolls_back_the_active_deployment_with_the_reason(served, ingest):
    rule(served.model, target="production", action="rollback", severity="critical")
    active = Deployment.objects.get(model=served.model, deployment_target="production", deployment_status="active")
    assert active.model_version == served.v2
    ingest(served.v2, [0.71, 0.71])
    active.refresh_from_db()
    reason = "alert 'accuracy floor': avg accuracy (production) 0.71 < 0.8 over 30 min"
    assert active.deployment_status == DeploymentStatus.ROLLED_BACK and active.rollback_reason == reason
    restored = Deployment.objects.get(model=served.model, deployment_target="production", deployment_status="active")
    assert restored.model_version == served.v1
    (rollback,) = events("rollback")
    assert rollback.changes["reason"] == reason and rollback.changes["restored"] == restored.pk
    alert = Alert.objects.get()
    assert alert.action_taken == f"Rolled back deployment {active.pk}; version 'v1' is active on 'production' again."
    assert events("fire_alert")[0].changes["action_taken"] == alert.action_taken


def test_rollback_is_only_for_the_version_active_on_the_target(served, ingest):
    rule(served.model, target="production", action="rollback")
    rule(served.model, name="anywhere", target=None)  # fires for v1 as well, without an action
    # v2 is active on production; v1 (superseded there) breaches the rule that has no target only.
    ingest(served.v1, [0.1, 0.1])
    assert Alert.objects.get().rule.name == "anywhere" and not events("rollback")


def test_a_guardrail_pauses_the_experiment_when_a_treatment_breaches(world, ingest):
    experiment = experiments.create_experiment(
        model=world.model,
        target="staging",
        name="try v2",
        variants=[experiments.VariantSpec("v1", 9000, is_control=True), experiments.VariantSpec("v2", 1000)],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    record(world.v1, [0.9])
    rule(world.model, target="staging", action="pause_experiment")
    ingest(world.v1, [0.1, 0.1])  # the control breaching pauses nothing
    assert experiments.get_experiment(experiment.pk).state == ExperimentState.RUNNING
    assert Alert.objects.get().action_taken.startswith("No pause: v1 is not a treatment")
    ingest(world.v2, [0.5, 0.6])
    assert experiments.get_experiment(experiment.pk).state == ExperimentState.PAUSED
    alert = Alert.objects.get(version=world.v2)
    assert alert.action_taken == f"Paused experiment {experiment.pk} (try v2)."
    assert len(events("pause_experiment")) == 1


# --- Acknowledging, disabling, webhooks --------------------------------------------------------------
def test_acknowledge_once_and_disabling_resolves(served, ingest):
    watching = rule(served.model)
    ingest(served.v2, [0.1])
    alert = Alert.objects.get()
    acknowledged = alerts.acknowledge_alert(alert=alert, acting_user=user_with_role("ops", "deployer"))
    assert acknowledged.acknowledged_by == "ops" and acknowledged.state == "firing"
    with pytest.raises(Conflict):
        alerts.acknowledge_alert(alert=alert, acting_user=Operator())
    assert len(events("acknowledge_alert")) == 1
    alerts.update_rule(rule=watching, changes={"enabled": False}, acting_user=Operator())
    alert.refresh_from_db()
    assert (
        alert.state == AlertState.RESOLVED and events("resolve_alert")[0].changes["reason"] == "the rule was disabled"
    )
    ingest(served.v2, [0.1])  # a disabled rule is not evaluated
    assert Alert.objects.count() == 1


def test_alert_events_are_webhook_events(served, ingest):
    webhooks.create_subscription(url="http://127.0.0.1:9/hook", events=["alert.fired", "alert.resolved"])
    webhooks.create_subscription(url="http://127.0.0.1:9/all", events=["*"], model_filter="other-*")
    rule(served.model)
    ingest(served.v2, [0.1])
    ingest(served.v2, [0.9] * 10)
    alerts.acknowledge_alert(alert=Alert.objects.get(), acting_user=Operator())
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.event_type for d in deliveries] == ["alert.fired", "alert.resolved"]
    assert '"state":"firing"' in deliveries[0].body and '"state":"resolved"' in deliveries[1].body
    assert '"rule_name":"accuracy floor"' in deliveries[0].body
    assert webhooks.event_types_for(events("acknowledge_alert")[0]) == ["alert.acknowledged"]


def test_a_failing_action_leaves_the_ingest_and_the_alert(served, ingest, monkeypatch):
    """An action the registry refuses (here: the deployment was rolled back between the evaluation's read
    and its lock) is written on the alert; the points stay recorded."""
    rule(served.model, target="production", action="rollback")
    real = alerts.rollback_deployment

    def refused(**kwargs):
        real(**kwargs)  # a concurrent rollback got there first ...
        return real(**kwargs)  # ... so this one is refused: 409

    monkeypatch.setattr(alerts, "rollback_deployment", refused)
    ingest(served.v2, [0.1])
    alert = Alert.objects.get()
    assert alert.action_taken.startswith("rollback refused: Deployment") and alert.state == "firing"
    assert served.v2.metric_points.filter(value=0.1).exists()
    # The refused action is undone whole (its savepoint): v2 is still the active version, nothing rolled back.
    active = Deployment.objects.get(model=served.model, deployment_target="production", deployment_status="active")
    assert active.model_version == served.v2 and not events("rollback")


def test_a_busy_stream_evaluates_a_rule_once_per_interval_and_cron_catches_up(served, ingest, settings, monkeypatch):
    monkeypatch.setattr(alerts, "_due_at", {})  # what this process evaluated before, in other tests
    settings.REGISTRY_ALERT_EVALUATION_SECONDS = 60
    rule(served.model)
    ingest(served.v2, [0.9])  # evaluated: fine
    ingest(served.v2, [0.1, 0.1, 0.1])  # a moment later: not evaluated again yet
    assert not Alert.objects.exists()
    assert alerts.evaluate_all().fired == 1  # manage.py evaluate_alerts, from cron
    assert Alert.objects.get().value == pytest.approx(0.3)


# --- The database's own rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"window_points": 10},  # two windows
        {"window_minutes": None},  # none
        {"aggregate": "median"},
        {"severity": "panic"},
        {"action": "rollback"},  # without a target
        {"threshold": None},  # a below rule without one
        {"condition": "no_data", "window_minutes": None, "window_points": 5},
        {"min_points": 0},
    ],
)
def test_the_database_refuses_a_broken_rule(served, changes):
    made = rule(served.model)
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertRule.objects.filter(pk=made.pk).update(**changes)


def test_the_database_keeps_one_firing_alert_per_rule_and_version(served):
    made = rule(served.model)
    Alert.objects.create(rule=made, version=served.v2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=made, version=served.v2)
    Alert.objects.create(rule=made, version=served.v2, state="resolved", resolved_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=made, version=served.v1, state="resolved")  # resolved without resolved_at
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=made, version=served.v1, acknowledged_at=timezone.now())  # by nobody


# --- Concurrency ----------------------------------------------------------------------------------
@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_ingests_at_once_raise_one_alert(world):
    record(world.v3, [0.9])  # the model has the metric
    for round_ in range(4):
        watching = rule(world.model, name=f"r{round_}")

        def send():
            try:
                record(world.v1, [0.1, 0.2])
            finally:
                connections.close_all()

        all_at_once([send, send, send])
        assert Alert.objects.filter(rule=watching, version=world.v1, state="firing").count() == 1
        assert AuditEvent.objects.filter(action="fire_alert", object_repr=f"resnet:r{round_} on v1").count() == 1
