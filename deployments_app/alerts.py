"""Performance alerts (issue #9 §4) and experiment guardrails (issue #11 §3): alert rules on a model's
metric history, their evaluation, the alerts they raise and what they do. Called by the API, the admin
and `manage.py evaluate_alerts` alike.

- A rule aggregates one metric (optionally of one source) of a version over a window (the last N points,
  or the points of the last T minutes), and breaches when the aggregate is above or below a threshold, or
  worse than a baseline version's by more than an amount (absolute, or relative to the baseline), worse
  following the metric's direction (models_app.comparison.metric_direction: a loss drops by rising). A
  `no_data` rule breaches when the window holds no point at all. Fewer than `min_points` points is no
  decision: the alert's state stays as it is.
- Evaluation runs when points arrive (models_app.metric_history's `points_recorded` signal, after the
  points committed; only the rules of that model whose metric and source the batch holds, in one query;
  each rule and version at most once per REGISTRY_ALERT_EVALUATION_SECONDS in a process, and after an
  evaluation that took t seconds not before 9 t: a busy stream does not re-aggregate its windows for
  every batch, and its rules take at most about a tenth of its time) and for every enabled rule in `manage.py
  evaluate_alerts` (for no-data rules, the last batches of a burst, and cron). Deciding
  reads without a lock; only a change of state locks the model's row, then the rule's, decides again and
  writes: one event when a rule starts firing for a version ('fire_alert', webhook alert.fired), one
  when it stops ('resolve_alert', alert.resolved), never one per point. The database keeps at most one
  firing alert per rule and version (a partial unique index).
- Actions run in the transaction that fires the alert, in a savepoint of their own: a refused action
  (a rollback with nothing to restore is fine; a deleted deployment, an experiment already paused) is
  written on the alert (`action_taken`) and in its audit event, never the ingest's failure. `rollback`
  rolls back the target's active deployment through deployments_app.services.rollback_deployment when
  it is the alerting version; `pause_experiment` pauses (deployments_app.experiments.pause_experiment) the
  experiment running on the target in which the version is a treatment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Avg, Count, Max, Min, Q, QuerySet, Subquery
from django.utils import timezone

from deployments_app import selectors
from deployments_app.experiments import pause_experiment
from deployments_app.models import (
    Alert,
    AlertAction,
    AlertBaseline,
    AlertCondition,
    AlertRule,
    AlertState,
    Deployment,
    DeploymentStatus,
    Experiment,
    ExperimentState,
    Target,
    Variant,
)
from deployments_app.services import rollback_deployment
from models_app.comparison import HIGHER, metric_direction
from models_app.models import METRIC_FIELDS, MetricPoint, ModelVersion, RegisteredModel, VersionMetric
from registry_site import audit
from registry_site.errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError, flatten
from registry_site.permissions import Caller, allows
from registry_site.prepared import ID_MARKER, PreparedQuery

logger = logging.getLogger(__name__)

# What a rule is made of: what the API, the admin and the audit trail show and take (the target by name).
RULE_FIELDS = (
    "target",
    "name",
    "metric",
    "source",
    "aggregate",
    "window_points",
    "window_minutes",
    "condition",
    "threshold",
    "baseline",
    "drop_by",
    "drop_relative",
    "min_points",
    "severity",
    "action",
    "enabled",
)
ACTION_PERMISSIONS = {
    AlertAction.ROLLBACK: "deployments_app.rollback_deployment",
    AlertAction.PAUSE_EXPERIMENT: "deployments_app.change_experiment",
}
_AGGREGATES = {"avg": Avg, "min": Min, "max": Max}


# --- Rules -----------------------------------------------------------------------------------------
def rule_values(rule: AlertRule) -> dict[str, Any]:
    """A rule's settings as plain values (its target by name): for the audit trail."""
    values = {name: getattr(rule, name) for name in RULE_FIELDS if name != "target"}
    values["target"] = rule.target.name if rule.target is not None else None
    return values


def _model_has_metric(model: RegisteredModel, metric: str) -> bool:
    """Whether some version of `model` has `metric`: a registered value (the seed's five or an open
    metric) or a point in its history."""
    versions = ModelVersion.objects.filter(model=model)
    if metric in METRIC_FIELDS and versions.filter(**{f"{metric}__isnull": False}).exists():
        return True
    if VersionMetric.objects.filter(model=model, name=metric).exists():
        return True
    return MetricPoint.objects.filter(version__in=Subquery(versions.values("pk")), name=metric).exists()


def _cross_field_errors(rule: AlertRule) -> dict[str, list[str]]:
    """The rules between fields, each named by the field to fix (the constraints say them too)."""
    errors: dict[str, list[str]] = {}
    if (rule.window_points is None) == (rule.window_minutes is None):
        errors["window_points"] = ["Give exactly one window: window_points (last N points) or window_minutes."]
    if rule.condition in (AlertCondition.ABOVE, AlertCondition.BELOW) and rule.threshold is None:
        errors["threshold"] = [f"A {rule.condition} rule needs a threshold."]
    if rule.condition == AlertCondition.DROP:
        if rule.baseline not in AlertBaseline.values:
            errors["baseline"] = ["A drop rule needs a baseline: previous or default."]
        elif rule.baseline == AlertBaseline.PREVIOUS and rule.target is None:
            errors["baseline"] = ["The previous version is the one active before on a target: give the rule a target."]
        if rule.drop_by is None:
            errors["drop_by"] = ["A drop rule needs drop_by (by how much worse it may get)."]
    elif rule.baseline or rule.drop_by is not None:
        errors["baseline" if rule.baseline else "drop_by"] = ["Only a drop rule has a baseline and drop_by."]
    if rule.condition == AlertCondition.NO_DATA and rule.window_minutes is None:
        errors["window_minutes"] = ["A no_data rule's window is a time: give window_minutes."]
    if rule.condition != AlertCondition.DROP and rule.drop_relative:
        errors["drop_relative"] = ["Only a drop rule has drop_relative."]
    if rule.window_points is not None and rule.min_points > rule.window_points:
        errors["min_points"] = [f"At most the window's {rule.window_points} points."]
    if rule.action != AlertAction.NONE and rule.target is None:
        errors["target"] = [f"A rule whose action is {rule.action} acts on a target: name it."]
    return errors


def _clean_rule(rule: AlertRule, values: dict[str, Any], *, acting_user: Caller) -> AlertRule:
    """Set `values` on `rule` and check all of it: InvalidInput naming every bad field, Forbidden naming
    `action` when the caller may not do what the action would."""
    unknown = sorted(set(values) - set(RULE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown alert rule fields: {', '.join(unknown)}.", errors={name: ["Unknown field."] for name in unknown}
        )
    given = dict(values)
    if "target" in given:
        name = given.pop("target")
        rule.target = selectors.get_target(name, field="target") if name else None
    for name, value in given.items():
        setattr(rule, name, "" if value is None and name in ("source", "baseline") else value)
    try:
        rule.full_clean(exclude=["model", "target"], validate_unique=False, validate_constraints=False)
        errors: dict[str, list[str]] = {}
    except DjangoValidationError as exc:
        errors = {("non_field_errors" if k == "__all__" else k): list(v) for k, v in exc.message_dict.items()}
    if not errors:
        errors = _cross_field_errors(rule)
    if not errors and not _model_has_metric(rule.model, rule.metric):
        errors["metric"] = [f"No version of '{rule.model.name}' has a metric '{rule.metric}' (registered or recorded)."]
    if errors:
        raise InvalidInput(f"Invalid input: {flatten(errors)}", errors=errors)
    needed = ACTION_PERMISSIONS.get(AlertAction(rule.action))
    if needed is not None and not allows(acting_user, needed):
        raise Forbidden(f"A rule whose action is {rule.action} acts for its author: you lack {needed}.", field="action")
    return rule


def _lock_model(model: RegisteredModel) -> RegisteredModel:
    locked = RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
    if locked is None:
        raise NotFound(f"Model '{model.name}' no longer exists: it was deleted meanwhile.")
    return locked


def _audit_rule(action: str, rule: AlertRule, changes: dict[str, Any]) -> None:
    audit.record(
        action,
        object_type="alert_rule",
        object_repr=f"{rule.model.name}:{rule.name}",
        model_name=rule.model.name,
        changes={"rule": rule.pk, **changes},
    )


@transaction.atomic
def create_rule(
    *, model: RegisteredModel, values: dict[str, Any], acting_user: Caller, created_by: str = ""
) -> AlertRule:
    """A new alert rule on `model`; its name is unique in the model (409 naming `name`). Locks the model's
    row, as every write of its rules and alerts does."""
    model = _lock_model(model)
    rule = _clean_rule(AlertRule(model=model, created_by=created_by), values, acting_user=acting_user)
    if AlertRule.objects.filter(model=model, name=rule.name).exists():
        raise Conflict(f"Model '{model.name}' has an alert rule named '{rule.name}' already.", field="name")
    rule.save()
    _audit_rule("create_alert_rule", rule, rule_values(rule))
    return rule


@transaction.atomic
def update_rule(*, rule: AlertRule, changes: dict[str, Any], acting_user: Caller) -> AlertRule:
    """Change some of a rule's settings; the whole must still be valid. Disabling a rule resolves its
    firing alerts (nothing watches them any more)."""
    _lock_model(rule.model)
    locked = (
        AlertRule.objects.select_for_update(of=("self",)).select_related("model", "target").filter(pk=rule.pk).first()
    )
    if locked is None:
        raise NotFound(f"Alert rule {rule.pk} not found.")
    before = rule_values(locked)
    locked = _clean_rule(locked, changes, acting_user=acting_user)
    if locked.name != before["name"] and AlertRule.objects.filter(model=locked.model, name=locked.name).exists():
        raise Conflict(f"Model '{locked.model.name}' has an alert rule named '{locked.name}' already.", field="name")
    changed = audit.diff(before, rule_values(locked))
    if changed:
        locked.save()
        _audit_rule("update_alert_rule", locked, changed)
    if not locked.enabled:
        for alert in locked.alerts.select_for_update().filter(state=AlertState.FIRING).select_related("version"):
            _resolve_locked(alert, value=None, note="the rule was disabled")
    return locked


@transaction.atomic
def delete_rule(*, rule: AlertRule) -> None:
    """Delete a rule and its alerts (their audit events stay)."""
    model = _lock_model(rule.model)
    locked = AlertRule.objects.select_for_update(of=("self",)).select_related("target").filter(pk=rule.pk).first()
    if locked is None:
        return
    locked.model = model
    values = rule_values(locked)
    locked.delete()
    audit.record(
        "delete_alert_rule",
        object_type="alert_rule",
        object_repr=f"{model.name}:{values['name']}",
        model_name=model.name,
        changes={"rule": rule.pk, **values},
    )


def alert_rules() -> QuerySet[AlertRule]:
    return AlertRule.objects.select_related("model", "target")


def alert_rules_listed() -> QuerySet[AlertRule]:
    """Rules with how many of their alerts fire (`firing_count`), for the API and the admin."""
    return alert_rules().annotate(firing_count=Count("alerts", filter=Q(alerts__state=AlertState.FIRING)))


def alerts() -> QuerySet[Alert]:
    return Alert.objects.select_related("rule__model", "rule__target", "version")


def get_alert(pk: int) -> Alert:
    found = alerts().filter(pk=pk).first()
    if found is None:
        raise NotFound(f"Alert {pk} not found.")
    return found


# --- Measuring -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What a rule says about a version now: breached True or False, or None (not enough to decide)."""

    breached: bool | None
    value: float | None
    points: int
    reason: str = ""


def _window_text(rule: AlertRule) -> str:
    if rule.window_minutes is not None:
        return f"over {rule.window_minutes} min"
    return f"over the last {rule.window_points} points"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _measure(rule: AlertRule, version_id: int, *, until: datetime) -> tuple[float | None, int]:
    """The rule's aggregate of its metric over its window ending at `until`, and how many points it
    holds. One query (two for `last`)."""
    points = MetricPoint.objects.filter(version_id=version_id, name=rule.metric)
    if rule.source:
        points = points.filter(source=rule.source)
    if rule.window_minutes is not None:
        window = points.filter(
            timestamp__gte=until - timedelta(minutes=rule.window_minutes), timestamp__lte=until
        ).order_by()
    else:
        newest = points.order_by("-timestamp", "-id").values("pk")[: rule.window_points]
        window = MetricPoint.objects.filter(pk__in=Subquery(newest)).order_by()
    if rule.aggregate in _AGGREGATES:
        found = window.aggregate(n=Count("id"), v=_AGGREGATES[rule.aggregate]("value"))
        return found["v"], found["n"]
    count = window.aggregate(n=Count("id"))["n"]
    if rule.aggregate == "count":
        return float(count), count
    last = window.order_by("-timestamp", "-id").values_list("value", flat=True).first() if count else None
    return last, count


def baseline_version(rule: AlertRule, version: ModelVersion) -> ModelVersion | None:
    """The version `version` is compared with by a drop rule: the model's default, or the version active
    on the rule's target before `version` was deployed there (the one active there now, when `version`
    is a candidate that was never deployed there: an experiment's treatment)."""
    if rule.baseline == AlertBaseline.DEFAULT:
        return ModelVersion.objects.filter(model_id=rule.model_id, is_default=True).first()
    history = Deployment.objects.filter(model_id=rule.model_id, deployment_target=rule.target)
    own = history.filter(model_version=version).order_by("-deployed_at", "-id").first()
    if own is None:
        before = history.filter(deployment_status=DeploymentStatus.ACTIVE)
    else:
        before = history.filter(Q(deployed_at__lt=own.deployed_at) | Q(deployed_at=own.deployed_at, id__lt=own.pk))
    found = before.exclude(model_version=version).order_by("-deployed_at", "-id").select_related("model_version")
    deployment = found.first()
    return deployment.model_version if deployment is not None else None


def judge(rule: AlertRule, version: ModelVersion, *, now: datetime | None = None) -> Outcome:
    """Does `rule` hold for `version` now?"""
    now = now or timezone.now()
    value, count = _measure(rule, version.pk, until=now)
    label = f"{rule.aggregate} {rule.metric}" + (f" ({rule.source})" if rule.source else "")
    if rule.condition == AlertCondition.NO_DATA:
        if count:
            return Outcome(False, value, count)
        return Outcome(
            True,
            None,
            0,
            f"no {rule.metric} point{' from ' + rule.source if rule.source else ''} "
            f"in the last {rule.window_minutes} min",
        )
    if value is None or count < rule.min_points:
        return Outcome(None, value, count)
    if rule.condition in (AlertCondition.ABOVE, AlertCondition.BELOW):
        assert rule.threshold is not None  # the rule's constraints
        above = rule.condition == AlertCondition.ABOVE
        breached = value > rule.threshold if above else value < rule.threshold
        sign = (">" if above else "<") if breached else ("<=" if above else ">=")
        return Outcome(
            breached, value, count, f"{label} {_number(value)} {sign} {_number(rule.threshold)} {_window_text(rule)}"
        )
    baseline = baseline_version(rule, version)
    if baseline is None or baseline.pk == version.pk:
        return Outcome(None, value, count)
    # The baseline's own latest window (a version no longer served has no recent points).
    latest = MetricPoint.objects.filter(version_id=baseline.pk, name=rule.metric)
    if rule.source:
        latest = latest.filter(source=rule.source)
    anchor = latest.aggregate(at=Max("timestamp"))["at"]
    base, base_count = _measure(rule, baseline.pk, until=anchor) if anchor is not None else (None, 0)
    if base is None or base_count < rule.min_points:
        return Outcome(None, value, count)
    higher = metric_direction(rule.model, rule.metric) == HIGHER
    worse_by = (base - value) if higher else (value - base)
    assert rule.drop_by is not None  # the rule's constraints
    allowed = rule.drop_by * abs(base) if rule.drop_relative else rule.drop_by
    breached = worse_by > allowed
    amount = f"{rule.drop_by:.2%} of it" if rule.drop_relative else _number(rule.drop_by)
    return Outcome(
        breached,
        value,
        count,
        f"{label} {_number(value)} vs {_number(base)} on {baseline.version} ({rule.baseline}): worse by "
        f"{_number(worse_by)}, {'more' if breached else 'not more'} than {amount} {_window_text(rule)}",
    )


# --- Which versions a rule watches --------------------------------------------------------------------
def watched_versions(rule: AlertRule) -> set[int]:
    """The versions a rule watches (by id): with a target, the version active there and the variants of an
    experiment running there; without, the versions active on any target and the default."""
    deployments = Deployment.objects.filter(model_id=rule.model_id, deployment_status=DeploymentStatus.ACTIVE)
    variants = Variant.objects.filter(experiment__model_id=rule.model_id, experiment__state=ExperimentState.RUNNING)
    if rule.target_id is not None:
        deployments = deployments.filter(deployment_target=rule.target)
        variants = variants.filter(experiment__target_id=rule.target_id)
        return set(deployments.values_list("model_version_id", flat=True)) | set(
            variants.values_list("version_id", flat=True)
        )
    default = ModelVersion.objects.filter(model_id=rule.model_id, is_default=True).values_list("pk", flat=True)
    return set(deployments.values_list("model_version_id", flat=True)) | set(default)


# --- State changes -------------------------------------------------------------------------------------
def _alert_repr(rule: AlertRule, version: ModelVersion) -> str:
    return f"{rule.model.name}:{rule.name} on {version.version}"


def _audit_alert(what: str, alert: Alert, **changes: Any) -> None:
    rule = alert.rule
    audit.record(
        what,
        object_type="alert",
        object_repr=_alert_repr(rule, alert.version),
        model_name=rule.model.name,
        changes={"alert": alert.pk, "rule": rule.name, "version": alert.version.version, **changes},
    )


def _act(rule: AlertRule, version: ModelVersion, reason: str) -> str:
    """Run the rule's action for a firing alert, in a savepoint: what it did, or why it did nothing."""
    if rule.action == AlertAction.NONE:
        return ""
    target = rule.target
    assert target is not None  # a rule with an action has a target (its constraints)
    try:
        with transaction.atomic():  # a refused action leaves nothing of itself behind
            return _run_action(rule, version, target, reason)
    except (RegistryError, DatabaseError) as exc:  # the alert stays, and says why nothing was done
        logger.warning("alert rule %s: %s refused: %s", rule.pk, rule.action, exc)
        return f"{rule.action} refused: {exc}"


def _run_action(rule: AlertRule, version: ModelVersion, target: Target, reason: str) -> str:
    """Roll back or pause, as the rule says; what was done, or why nothing was (a refusal raises)."""
    if rule.action == AlertAction.ROLLBACK:
        active = Deployment.objects.filter(
            model_id=rule.model_id, deployment_target=target, deployment_status=DeploymentStatus.ACTIVE
        ).first()
        if active is None or active.model_version_id != version.pk:
            return f"No rollback: {version.version} is not the version active on '{target.name}'."
        result = rollback_deployment(deployment=active, reason=f"alert '{rule.name}': {reason}")
        if result.restored is None:
            return f"Rolled back deployment {active.pk}; '{target.name}' has no earlier version to restore."
        return (
            f"Rolled back deployment {active.pk}; version '{result.restored.model_version.version}' "
            f"is active on '{target.name}' again."
        )
    experiment = Experiment.objects.filter(
        model_id=rule.model_id,
        target=target,
        state=ExperimentState.RUNNING,
        variants__version=version,
        variants__is_control=False,
    ).first()
    if experiment is None:
        return f"No pause: {version.version} is not a treatment of an experiment running on '{target.name}'."
    pause_experiment(experiment=experiment)
    return f"Paused experiment {experiment.pk} ({experiment.name})."


def _fire(rule: AlertRule, version: ModelVersion, now: datetime) -> Alert | None:
    """Start an alert for (rule, version) if the rule still holds under the locks; None when someone else
    did, or it no longer holds."""
    with transaction.atomic():
        _lock_model(rule.model)
        if AlertRule.objects.select_for_update().filter(pk=rule.pk, enabled=True).first() is None:
            return None
        rule = alert_rules().get(pk=rule.pk)  # its settings as they are now, under the lock
        if not ModelVersion.objects.filter(pk=version.pk).exists():
            return None
        if Alert.objects.filter(rule=rule, version=version, state=AlertState.FIRING).exists():
            return None
        outcome = judge(rule, version, now=now)
        if outcome.breached is not True:
            return None
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    rule=rule, version=version, value=outcome.value, reason=outcome.reason, started_at=now
                )
        except IntegrityError:  # fired by a concurrent evaluation (where the row lock does not exist: SQLite)
            return None
        alert.action_taken = _act(rule, version, outcome.reason)
        if alert.action_taken:
            alert.save(update_fields=["action_taken"])
        _audit_alert(
            "fire_alert",
            alert,
            severity=rule.severity,
            value=outcome.value,
            reason=outcome.reason,
            action=rule.action,
            action_taken=alert.action_taken,
        )
        return alert


def _resolve_locked(alert: Alert, *, value: float | None, note: str) -> Alert:
    alert.state = AlertState.RESOLVED
    alert.resolved_at = timezone.now()
    alert.resolved_value = value
    alert.save(update_fields=["state", "resolved_at", "resolved_value"])
    _audit_alert("resolve_alert", alert, value=value, reason=note)
    return alert


def _resolve(rule: AlertRule, version: ModelVersion, now: datetime) -> Alert | None:
    with transaction.atomic():
        _lock_model(rule.model)
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .filter(rule=rule, version=version, state=AlertState.FIRING)
            .select_related("rule__model", "version")
            .first()
        )
        if alert is None:
            return None
        outcome = judge(rule, version, now=now)
        if outcome.breached is not False:
            return None
        return _resolve_locked(alert, value=outcome.value, note=outcome.reason or "the rule no longer holds")


@dataclass
class Evaluation:
    evaluated: int = 0
    fired: int = 0
    resolved: int = 0

    def add(self, other: Evaluation) -> None:
        self.evaluated += other.evaluated
        self.fired += other.fired
        self.resolved += other.resolved


def evaluate(*, rules: Iterable[AlertRule], version: ModelVersion, now: datetime | None = None) -> Evaluation:
    """Evaluate `rules` (of the version's model) for `version`: fire or resolve where the state changes.
    Rules with a target are evaluated only for the versions they watch there."""
    now = now or timezone.now()
    report = Evaluation()
    rules = list(rules)
    if not rules:
        return report
    firing = set(
        Alert.objects.filter(rule__in=rules, version=version, state=AlertState.FIRING).values_list("rule_id", flat=True)
    )
    watched: dict[int, set[int]] = {}
    for rule in rules:
        if rule.target_id is not None and rule.pk not in firing:
            if rule.target_id not in watched:
                watched[rule.target_id] = watched_versions(rule)
            if version.pk not in watched[rule.target_id]:
                continue
        report.evaluated += 1
        outcome = judge(rule, version, now=now)
        if outcome.breached is True and rule.pk not in firing:
            report.fired += _fire(rule, version, now) is not None
        elif outcome.breached is False and rule.pk in firing:
            report.resolved += _resolve(rule, version, now) is not None
    return report


# When each (rule, version) may next be evaluated on arriving points, in this process (time.monotonic()).
_due_at: dict[tuple[int, int], float] = {}
_DUE_KEPT = 100_000
# After an evaluation that took t seconds, its rules wait at least WAIT_FACTOR * t: evaluating on arriving
# points takes at most about a tenth of a busy stream's time, however many points its windows hold.
WAIT_FACTOR = 9


def _due(rule: AlertRule, version: ModelVersion, now: float) -> bool:
    return settings.REGISTRY_ALERT_EVALUATION_SECONDS <= 0 or _due_at.get((rule.pk, version.pk), 0.0) <= now


# A model's enabled rules, the SQL compiled once: every registration with metrics asks (issue #12).
_ENABLED_RULES = PreparedQuery(
    lambda model_id: alert_rules().filter(model_id=model_id, enabled=True), "model_id", markers={"model_id": ID_MARKER}
)


def on_points_recorded(
    sender: Any, *, version: ModelVersion, names: frozenset[str], sources: frozenset[str], **kwargs: Any
) -> None:
    """models_app.metric_history.points_recorded: the model's enabled rules on a metric the batch holds
    (from a source it holds, or any source), in one query; each evaluated unless this process did a
    moment ago: REGISTRY_ALERT_EVALUATION_SECONDS, or longer when evaluating took long (WAIT_FACTOR)."""
    started = time.monotonic()
    candidates = _ENABLED_RULES.all(model_id=version.model_id)
    matching = [
        r
        for r in candidates
        if r.metric in names and (not r.source or r.source in sources) and _due(r, version, started)
    ]
    if not matching:
        return
    evaluate(rules=matching, version=version)
    interval = settings.REGISTRY_ALERT_EVALUATION_SECONDS
    if interval > 0:
        finished = time.monotonic()
        if len(_due_at) >= _DUE_KEPT:
            _due_at.clear()
        wait = max(interval, WAIT_FACTOR * (finished - started))
        _due_at.update(((rule.pk, version.pk), finished + wait) for rule in matching)


def evaluate_all(*, now: datetime | None = None) -> Evaluation:
    """Every enabled rule for the versions it watches and those it fires for (`manage.py evaluate_alerts`,
    from cron): what raises no-data alerts, and resolves alerts whose window emptied of breaches."""
    now = now or timezone.now()
    report = Evaluation()
    for rule in alert_rules().filter(enabled=True).order_by("model_id", "id"):
        ids = watched_versions(rule) | set(
            rule.alerts.filter(state=AlertState.FIRING).values_list("version_id", flat=True)
        )
        for version in ModelVersion.objects.filter(pk__in=ids).order_by("id"):
            report.add(evaluate(rules=[rule], version=version, now=now))
    return report


@transaction.atomic
def acknowledge_alert(*, alert: Alert, acting_user: Caller) -> Alert:
    """Someone has seen the alert: who and when (409 if someone already did). A firing alert stays firing."""
    locked = Alert.objects.select_for_update().filter(pk=alert.pk).first()
    if locked is None:
        raise NotFound(f"Alert {alert.pk} not found.")
    found = get_alert(alert.pk)
    if found.acknowledged_at is not None:
        raise Conflict(
            f"Alert {found.pk} was acknowledged by {found.acknowledged_by} at {found.acknowledged_at.isoformat()}.",
            field="alert",
        )
    user = getattr(acting_user, "get_username", None)
    name = user() if callable(user) and acting_user.is_authenticated else ""
    found.acknowledged_by = (name or audit.current_actor().name)[:150]
    found.acknowledged_at = timezone.now()
    found.save(update_fields=["acknowledged_by", "acknowledged_at"])
    _audit_alert("acknowledge_alert", found, state=found.state)
    return found
