"""Promotion policies (issue #10 §4): the one evaluation of the rules a version must meet before it is
deployed to a target. deploy_version calls `evaluate` inside its transaction (and check_deploy for a dry
run), so the API, the admin, the commands and the client all meet the same rules.

Every rule of the target's policy and of the model's own policy (which adds to the target's) gives a
RuleResult: what the rule expects, what was seen, and whether it passed. A deploy is refused when any
failed; the refusal lists them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from deployments_app.models import (
    Alert,
    AlertState,
    Approval,
    Deployment,
    DeploymentStatus,
    PromotionPolicy,
    Target,
)
from models_app.models import METRIC_FIELDS, FormatCheckResult, ModelVersion
from models_app.open_metadata import metrics_of
from registry_site.permissions import Caller

# Seen values are rounded for the reader (the comparison uses the exact ones).
SHOWN_DIGITS = 6


@dataclass(frozen=True)
class RuleResult:
    rule: str  # status, min_metric, max_regression, format_check, file_verified, approvals, soak
    passed: bool
    expected: Any
    seen: Any
    detail: str  # the result in a sentence
    policy: str  # whose rule: "target" (the target's own policy) or "model" (the model's policy there)
    metric: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "metric" or value is not None}

    def summary(self) -> str:
        return f"{self.rule}: {self.detail}"


def policies_for(model_id: int, target: Target) -> list[PromotionPolicy]:
    """The target's own policy, then the model's policy on it (either may be missing)."""
    found = PromotionPolicy.objects.select_related("soak_target").filter(
        Q(model__isnull=True) | Q(model_id=model_id), target=target
    )
    return sorted(found, key=lambda policy: policy.model_id is not None)


class MetricReader:
    """A version's metric by name: one of the seed's five fields, or a named (open) metric, whose rows
    are read once per version however many rules name them."""

    def __init__(self) -> None:
        self._named: dict[int, dict[str, float]] = {}

    def __call__(self, version: ModelVersion, name: str) -> float | None:
        if name in METRIC_FIELDS:
            value = getattr(version, name)
            return None if value is None else float(value)
        if version.pk not in self._named:
            self._named[version.pk] = metrics_of(version)
        return self._named[version.pk].get(name)


def _shown(value: float | None) -> float | None:
    return None if value is None else round(value, SHOWN_DIGITS)


def evaluate(*, version: ModelVersion, target: Target, requester: Caller) -> list[RuleResult]:
    """Every rule of the policies that apply to deploying `version` to `target` by `requester`, each
    with its result. Empty when no policy applies (a deploy then goes ahead as before policies)."""
    results: list[RuleResult] = []
    policies = policies_for(version.model_id, target)
    if not policies:
        return results
    active = (
        Deployment.objects.select_related("model_version")
        .filter(model_id=version.model_id, deployment_target=target, deployment_status=DeploymentStatus.ACTIVE)
        .first()
    )
    metric_of = MetricReader()
    for policy in policies:
        scope = "model" if policy.model_id else "target"
        results += _status(policy, version, scope)
        results += _minimums(policy, version, scope, metric_of)
        results += _regressions(policy, version, active, scope, metric_of)
        results += _file_rules(policy, version, scope)
        results += _approvals(policy, version, target, requester, scope)
        results += _soak(policy, version, scope)
    return results


def failed(results: list[RuleResult]) -> list[RuleResult]:
    return [result for result in results if not result.passed]


def _status(policy: PromotionPolicy, version: ModelVersion, scope: str) -> list[RuleResult]:
    if not policy.required_status:
        return []
    passed = version.status == policy.required_status
    detail = f"status is {version.status}" + ("" if passed else f", not {policy.required_status}")
    return [RuleResult("status", passed, policy.required_status, version.status, detail, scope)]


def _minimums(policy: PromotionPolicy, version: ModelVersion, scope: str, metric_of: MetricReader) -> list[RuleResult]:
    results = []
    for name, minimum in sorted(policy.min_metrics.items()):
        value = metric_of(version, name)
        if value is None:
            passed, detail = False, f"the version has no {name}; at least {minimum} is required"
        else:
            passed = value >= minimum
            detail = f"{name} {_shown(value)} {'≥' if passed else '<'} the minimum {minimum}"
        results.append(RuleResult("min_metric", passed, minimum, _shown(value), detail, scope, metric=name))
    return results


def _regressions(
    policy: PromotionPolicy, version: ModelVersion, active: Deployment | None, scope: str, metric_of: MetricReader
) -> list[RuleResult]:
    results = []
    for rule in policy.max_regressions:
        name, max_drop = rule["metric"], rule["max_drop"]
        lower_is_better = rule.get("lower_is_better", False)
        if active is None or active.model_version_id == version.pk:
            what = "nothing is active on the target" if active is None else "the version is the active one"
            detail = f"{name}: {what}, nothing to compare"
            results.append(RuleResult("max_regression", True, None, None, detail, scope, name))
            continue
        current = active.model_version
        before, after = metric_of(current, name), metric_of(version, name)
        if before is None:
            detail = f"the active version {current.version} has no {name}: nothing to compare"
            results.append(RuleResult("max_regression", True, None, _shown(after), detail, scope, name))
            continue
        # The least (or, lower being better, the most) the version may score.
        bound = before + max_drop if lower_is_better else before - max_drop
        word = "at most" if lower_is_better else "at least"
        expected = f"{word} {_shown(bound)} ({current.version} has {_shown(before)}, max_drop {max_drop})"
        if after is None:
            passed, detail = False, f"the version has no {name}; {expected}"
        else:
            passed = after <= bound if lower_is_better else after >= bound
            worse = after - before if lower_is_better else before - after
            detail = f"{name} {_shown(after)} against {current.version}'s {_shown(before)} (worse by {_shown(worse)})"
            detail += "" if passed else f"; {expected}"
        results.append(RuleResult("max_regression", passed, expected, _shown(after), detail, scope, name))
    return results


def _file_rules(policy: PromotionPolicy, version: ModelVersion, scope: str) -> list[RuleResult]:
    results = []
    if policy.require_format_check:
        seen = version.format_check or "not checked (no file)"
        passed = version.format_check == FormatCheckResult.PASSED
        detail = f"format check {seen}" + (f": {version.format_check_detail}" if version.format_check_detail else "")
        results.append(RuleResult("format_check", passed, FormatCheckResult.PASSED, seen, detail, scope))
    if policy.require_verified_file:
        # The registry hashes every file as it streams in and stores it under that sha256 (refusing a
        # declared digest that differs): a version with a file has a verified one. Re-reading stored
        # files is verify_artifacts' job, offline; no per-version record of it exists to check here.
        passed = bool(version.artifact_id)
        seen = f"sha256 {version.artifact_id}" if passed else "no file"
        detail = "the file's sha256 was computed by the registry as it was stored" if passed else "no file"
        results.append(RuleResult("file_verified", passed, "a stored file with its sha256", seen, detail, scope))
    return results


def _approvals(
    policy: PromotionPolicy, version: ModelVersion, target: Target, requester: Caller, scope: str
) -> list[RuleResult]:
    if not policy.approvals_required:
        return []
    approvals = Approval.objects.filter(version=version, target=target).select_related("user")
    requester_id = getattr(requester, "pk", None)
    counted = sorted(a.user.get_username() for a in approvals if requester_id is None or a.user_id != requester_id)
    own = any(a.user_id == requester_id for a in approvals) if requester_id is not None else False
    passed = len(counted) >= policy.approvals_required
    detail = f"{len(counted)} of {policy.approvals_required} approvals by users other than the one deploying"
    if counted:
        detail += f" ({', '.join(counted)})"
    if own:
        detail += "; the deploying user's own approval does not count"
    return [RuleResult("approvals", passed, policy.approvals_required, len(counted), detail, scope)]


def _soak(policy: PromotionPolicy, version: ModelVersion, scope: str) -> list[RuleResult]:
    """Active on the soak target for at least N hours, without an alert on the version (from a rule of
    that target or of the whole model) firing now or having fired since it went active there: an alert
    restarts the soak."""
    if policy.soak_target is None:
        return []
    where, hours = policy.soak_target.name, policy.soak_hours
    since = (
        Deployment.objects.filter(
            model_version=version, deployment_target=policy.soak_target, deployment_status=DeploymentStatus.ACTIVE
        )
        .values_list("deployed_at", flat=True)
        .first()
    )
    expected = f"active on {where} for at least {hours} h without a firing alert"
    if since is None:
        return [RuleResult("soak", False, expected, None, f"not active on {where}; {expected}", scope)]
    active_hours = (timezone.now() - since) / timedelta(hours=1)
    alert = (
        Alert.objects.filter(version=version)
        .filter(Q(rule__target=policy.soak_target) | Q(rule__target__isnull=True))
        .filter(Q(state=AlertState.FIRING) | Q(started_at__gte=since))
        .select_related("rule")
        .order_by("-started_at")
        .first()
    )
    passed = active_hours >= hours and alert is None
    detail = f"active on {where} for {active_hours:.1f} h"
    if alert is not None:
        moment = alert.started_at.strftime("%Y-%m-%d %H:%M UTC")
        fired = "is firing" if alert.state == AlertState.FIRING else "fired"
        detail += f"; alert '{alert.rule.name}' {fired} (since {moment}) while it was active there"
    if not passed:
        detail += f"; {expected}"
    return [RuleResult("soak", passed, expected, round(active_hours, 2), detail, scope)]
