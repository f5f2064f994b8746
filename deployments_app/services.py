"""Deploying a version to a target, and rolling a deployment back. Called by the API, the admin's
actions and the management commands alike.

Both lock the model's row first, so deploys and rollbacks of one model's targets take turns across all
workers; the partial unique index on (model, target) for active rows backs that up in the database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from deployments_app import policies, selectors
from deployments_app.models import Approval, Deployment, DeploymentStatus, Experiment, PromotionPolicy, Target
from models_app.models import ModelVersion, RegisteredModel, VersionStatus
from registry_site import audit
from registry_site.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyRefused, flatten
from registry_site.permissions import Caller, deploy_refusal, user_of
from registry_site.validators import clean_fields

# What PATCH /targets/{name}, the admin and `manage.py targets update` may change. The name is the key
# deployments refer to, so it never changes.
EDITABLE_TARGET_FIELDS = frozenset({"description", "protected", "display_order"})


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    created: bool  # False when the version was already the active one on that target
    checks: list[policies.RuleResult] = dataclasses.field(
        default_factory=list
    )  # the promotion policies' rules, all passed


@dataclass(frozen=True)
class DeployCheck:
    """What a deploy would meet (a dry run): every rule of the target's promotion policies."""

    version: ModelVersion
    target: Target
    checks: list[policies.RuleResult]
    already_active: bool  # deploying would change nothing

    @property
    def allowed(self) -> bool:
        return self.already_active or not policies.failed(self.checks)


@dataclass(frozen=True)
class RollbackResult:
    rolled_back: Deployment
    restored: Deployment | None  # None: nothing earlier to return to, the target is now empty


def _active_on_target(model_id: int, target: Target) -> Deployment | None:
    return Deployment.objects.filter(
        model_id=model_id, deployment_target=target, deployment_status=DeploymentStatus.ACTIVE
    ).first()


@transaction.atomic
def deploy_version(
    *,
    version: ModelVersion,
    target: str,
    acting_user: Caller,
    deployed_by: str = "",
    deployment_config: dict[str, Any] | None = None,
) -> DeployResult:
    """Make `version` the active deployment of its model on `target`, superseding whatever was active
    there. Deploying the version that is already active changes nothing.

    `target` is a known target's name in any case (`Production` deploys to `production`, and the
    deployment records the target's own name); an unknown one is a 400 on deployment_target that lists
    the known targets. `acting_user` is who asks (the API's or the admin's user, the shell's Operator for
    a command): a protected target needs the deployer role's permission (check_may_deploy).

    The target's promotion policies (deployments_app.policies) are evaluated under the model's lock: a
    deploy that breaks any rule is a PolicyRefused (409) listing every rule with what it saw. Operators'
    commands obey them too; relaxing a policy is a change of the policy, audited like any other."""
    named = selectors.get_target(target, field="deployment_target")
    check_may_deploy(acting_user, named)
    given: dict[str, Any] = {"deployed_by": deployed_by}
    if deployment_config is not None:
        given["deployment_config"] = deployment_config
    clean_fields(Deployment, given)
    # The model (or the version) may have been deleted since the caller looked it up: a request that
    # held the lock before us deleted it. That is a 404, not a crash.
    if RegisteredModel.objects.select_for_update().filter(pk=version.model_id).first() is None:
        raise NotFound(f"Version '{version.version}' no longer exists: its model was deleted meanwhile.")
    # The target's row too, after the model's (delete_target takes only this one): it cannot be deleted
    # or made protected between the check above and the deployment's insert.
    locked = Target.objects.select_for_update().filter(pk=named.pk).first()
    if locked is None:
        raise InvalidInput(
            f"Target '{named.name}' was deleted meanwhile; the known targets are: {selectors.known_targets_text()}.",
            field="deployment_target",
        )
    check_may_deploy(acting_user, locked)
    version = _deployable(version)

    current = _active_on_target(version.model_id, locked)
    if current is not None and current.model_version_id == version.pk:
        return DeployResult(current, created=False)
    checks = check_policies(version=version, target=locked, acting_user=acting_user)
    if current is not None:
        current.deployment_status = DeploymentStatus.SUPERSEDED
        current.save(update_fields=["deployment_status"])
    deployment = Deployment.objects.create(
        model=version.model,
        model_version=version,
        deployment_target=locked,
        deployed_by=deployed_by,
        deployment_config=version.deployment_config if deployment_config is None else deployment_config,
    )
    changes: dict[str, Any] = {
        "deployment": deployment.pk,
        "superseded": current.pk if current else None,
        "deployment_config": deployment.deployment_config,
    }
    if checks:
        changes["policy_checks"] = [check.as_dict() for check in checks]
    audit.record(
        "deploy",
        object_type="deployment",
        object_repr=f"{version.model.name}:{version.version} -> {locked.name}",
        model_name=version.model.name,
        changes=changes,
    )
    return DeployResult(deployment, created=True, checks=checks)


def check_deploy(*, version: ModelVersion, target: str, acting_user: Caller) -> DeployCheck:
    """A dry run of deploy_version: the same refusals (unknown target, protected target, archived or
    fileless version) and the same evaluation of the promotion policies, with nothing written. A failed
    policy rule is not an error here: the answer lists it (a CI gate shows it)."""
    named = selectors.get_target(target, field="deployment_target")
    check_may_deploy(acting_user, named)
    version = _deployable(version)
    current = _active_on_target(version.model_id, named)
    checks = policies.evaluate(version=version, target=named, requester=acting_user)
    already = current is not None and current.model_version_id == version.pk
    return DeployCheck(version, named, checks, already_active=already)


def _deployable(version: ModelVersion) -> ModelVersion:
    """The version as it is now (a 404 if it was deleted meanwhile): not archived, with a file."""
    found = ModelVersion.objects.select_related("model", "artifact").filter(pk=version.pk).first()
    if found is None:
        raise NotFound(f"Version '{version.version}' no longer exists: it was deleted meanwhile.")
    if found.status == VersionStatus.ARCHIVED:
        raise Conflict(f"Version '{found.version}' is archived and cannot be deployed.", field="version")
    if not found.artifact_id:
        raise Conflict(
            f"Version '{found.version}' has no file; attach one with PUT .../versions/{found.version}/file "
            "before deploying it.",
            field="version",
        )
    return found


def check_policies(*, version: ModelVersion, target: Target, acting_user: Caller) -> list[policies.RuleResult]:
    """The promotion policies of `target` for `version`, as `acting_user` would deploy it: a
    PolicyRefused (409) listing every rule when any fails; the checks otherwise."""
    checks = policies.evaluate(version=version, target=target, requester=acting_user)
    _refuse_failed(version, target, checks)
    return checks


def _refuse_failed(version: ModelVersion, target: Target, checks: list[policies.RuleResult]) -> None:
    broken = policies.failed(checks)
    if broken:
        raise PolicyRefused(
            f"The promotion policy of '{target.name}' refuses {version.model.name}:{version.version}: "
            + "; ".join(result.summary() for result in broken)
            + ".",
            checks=[check.as_dict() for check in checks],
        )


def check_may_deploy(caller: Caller, target: Target, *, field: str = "deployment_target") -> None:
    """A protected target needs the deployer role; a token's deploy scope may cover named targets only.
    deploy_version asks it, and so does whatever else puts a version in front of a target's traffic (an
    A/B test's variants: deployments_app.experiments)."""
    refusal = deploy_refusal(caller, target=target.name, protected=target.protected)
    if refusal is not None:
        raise Forbidden(refusal, field=field)


@transaction.atomic
def rollback_deployment(*, deployment: Deployment, reason: str = "") -> RollbackResult:
    """Roll back an active deployment: mark it rolled back and make the most recent superseded
    deployment of the same model on the same target (whose version is not archived) active again."""
    locked = RegisteredModel.objects.select_for_update().filter(pk=deployment.model_id).first() is not None
    found = Deployment.objects.filter(pk=deployment.pk).first() if locked else None
    if found is None:
        raise NotFound(f"Deployment {deployment.pk} no longer exists: its model was deleted meanwhile.")
    deployment = found
    if deployment.deployment_status != DeploymentStatus.ACTIVE:
        raise Conflict(
            f"Deployment {deployment.pk} is {deployment.deployment_status}, not active; only the active "
            "deployment of a target can be rolled back."
        )
    deployment.deployment_status = DeploymentStatus.ROLLED_BACK
    deployment.rollback_at = timezone.now()
    deployment.rollback_reason = reason
    deployment.save(update_fields=["deployment_status", "rollback_at", "rollback_reason"])

    previous = (
        Deployment.objects.filter(
            model_id=deployment.model_id,
            deployment_target__name=deployment.deployment_target_id,
            deployment_status=DeploymentStatus.SUPERSEDED,
        )
        .exclude(model_version__status=VersionStatus.ARCHIVED)
        .order_by("-deployed_at", "-id")
        .first()
    )
    if previous is not None:
        previous.deployment_status = DeploymentStatus.ACTIVE
        previous.save(update_fields=["deployment_status"])
    model_name = deployment.model.name
    audit.record(
        "rollback",
        object_type="deployment",
        object_repr=f"{model_name}:{deployment.model_version.version} -> {deployment.deployment_target_id}",
        model_name=model_name,
        changes={"deployment": deployment.pk, "reason": reason, "restored": previous.pk if previous else None},
    )
    return RollbackResult(deployment, previous)


def _target_values(target: Target) -> dict[str, Any]:
    return {"description": target.description, "protected": target.protected, "display_order": target.display_order}


@transaction.atomic
def create_target(*, name: str, description: str = "", protected: bool = False, display_order: int = 100) -> Target:
    """A new target. Its name is unique ignoring case (the database's index on LOWER(name) says so too):
    `Production` next to `production` would make two targets of one."""
    values = clean_fields(
        Target,
        {"name": name, "description": description, "protected": protected, "display_order": display_order},
    )
    existing = selectors.find_target(name)
    if existing is not None:
        raise Conflict(f"Target '{existing.name}' exists already (names are compared ignoring case).", field="name")
    try:
        with transaction.atomic():
            target = Target.objects.create(**values)
    except IntegrityError:  # made by a concurrent request after our look-up
        raise Conflict(f"Target '{name}' exists already (names are compared ignoring case).", field="name") from None
    audit.record("create_target", object_type="target", object_repr=target.name, changes=_target_values(target))
    return target


@transaction.atomic
def update_target(*, target: Target, changes: dict[str, Any]) -> Target:
    """Change a target's description, protected flag or display order (its name never changes:
    deployments refer to it). Locks the target's row, so a deploy deciding whether it may deploy there
    sees the flag before or after, never half."""
    unknown = sorted(set(changes) - EDITABLE_TARGET_FIELDS)
    if unknown:
        raise InvalidInput(
            f"A target's {', '.join(unknown)} cannot be changed; only its description, protected flag and "
            "display_order can.",
            errors={field: ["Cannot be changed."] for field in unknown},
        )
    locked = Target.objects.select_for_update().filter(pk=target.pk).first()
    if locked is None:
        raise selectors.target_not_found(target.name)
    cleaned = clean_fields(Target, {"name": locked.name, **changes})
    cleaned.pop("name")
    before = _target_values(locked)
    for field, value in cleaned.items():
        setattr(locked, field, value)
    changed = audit.diff(before, _target_values(locked))
    if changed:
        locked.save(update_fields=sorted(changed))
        audit.record("update_target", object_type="target", object_repr=locked.name, changes=changed)
    return locked


@transaction.atomic
def delete_target(*, target: Target) -> None:
    """Delete a target that was never deployed to nor experimented on. One with deployments (active or
    history) or experiments is a 409: their records name it (the database refuses it as well)."""
    locked = Target.objects.select_for_update().filter(pk=target.pk).first()
    if locked is None:
        raise selectors.target_not_found(target.name)
    soaked = PromotionPolicy.objects.filter(soak_target=locked).select_related("target").first()
    if soaked is not None:
        raise Conflict(
            f"Target '{locked.name}' is the soak target of the {soaked}; change that policy first.",
        )
    used = Deployment.objects.filter(deployment_target=locked)
    if used.exists():
        active = used.filter(deployment_status=DeploymentStatus.ACTIVE).exists()
        raise Conflict(
            f"Target '{locked.name}' has deployments{' (some active)' if active else ''}; a target with "
            "deployment history cannot be deleted.",
        )
    tested = Experiment.objects.filter(target=locked).values_list("pk", flat=True).first()
    if tested is not None:
        raise Conflict(f"Target '{locked.name}' has experiments (experiment {tested}); it cannot be deleted.")
    values: dict[str, Any] = _target_values(locked)
    # Its promotion policies go with it (CASCADE): the audit event keeps what they were.
    policies_there = [policy_values(policy) for policy in locked.policies.select_related("soak_target")]
    if policies_there:
        values["policies"] = policies_there
    locked.delete()
    audit.record("delete_target", object_type="target", object_repr=target.name, changes=values)


# --- Promotion policies and approvals (issue #10 §4) ------------------------------------------------
POLICY_FIELDS = PromotionPolicy.RULES


def policy_values(policy: PromotionPolicy) -> dict[str, Any]:
    """A policy's rules as plain values (the soak target by name): for the audit trail and the API."""
    values = {name: getattr(policy, name) for name in POLICY_FIELDS if name != "soak_target"}
    values["soak_target"] = policy.soak_target.name if policy.soak_target is not None else None
    return values


def _policy_label(target: Target, model: RegisteredModel | None) -> str:
    return f"{target.name}" + (f" for {model.name}" if model is not None else "")


@transaction.atomic
def set_policy(*, target: Target, model: RegisteredModel | None = None, rules: dict[str, Any]) -> PromotionPolicy:
    """Make the promotion policy of `target` (for every model, or for `model` only: it adds to the
    target's) exactly `rules`; a rule not given is off. `soak_target` is a target's name (any case).
    Locks the target's row, as a deploy to it does, so a deploy sees the policy before or after."""
    unknown = sorted(set(rules) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown policy rules: {', '.join(unknown)}.", errors={name: ["Unknown rule."] for name in unknown}
        )
    if Target.objects.select_for_update().filter(pk=target.pk).first() is None:
        raise selectors.target_not_found(target.name)
    given = dict(rules)
    soak = given.pop("soak_target", None)
    soak_target = selectors.get_target(soak, field="soak_target") if soak else None
    policy = (
        PromotionPolicy.objects.select_for_update().filter(target=target, model=model).first()
    ) or PromotionPolicy(target=target, model=model)
    before = policy_values(policy) if policy.pk else {}
    defaults = PromotionPolicy()
    for name in POLICY_FIELDS:
        if name != "soak_target":
            setattr(policy, name, given.get(name, getattr(defaults, name)))
    policy.soak_target = soak_target
    try:
        policy.full_clean()
    except DjangoValidationError as exc:
        errors = {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
        raise InvalidInput(f"Invalid input: {flatten(errors)}", errors=errors) from None
    created = policy.pk is None
    policy.save()
    changes = audit.diff(before, policy_values(policy))
    if changes or created:
        audit.record(
            "create_policy" if created else "update_policy",
            object_type="promotion_policy",
            object_repr=_policy_label(target, model),
            model_name=model.name if model else "",
            changes=changes,
        )
    return policy


@transaction.atomic
def delete_policy(*, target: Target, model: RegisteredModel | None = None) -> None:
    """Remove the target's policy (or the model's policy there): its rules no longer apply. Removing
    a policy that is not there changes nothing."""
    policy = PromotionPolicy.objects.select_for_update().filter(target=target, model=model).first()
    if policy is None:
        return
    values = policy_values(policy)
    policy.delete()
    audit.record(
        "delete_policy",
        object_type="promotion_policy",
        object_repr=_policy_label(target, model),
        model_name=model.name if model else "",
        changes=values,
    )


@transaction.atomic
def approve_version(*, version: ModelVersion, target: str, approver: Caller, comment: str = "") -> Approval:
    """Record `approver`'s approval of `version` for `target`, which a policy's approvals_required
    counts unless the approver is the one deploying (four eyes). An approval names a user: the shell's
    operator and an anonymous caller cannot approve. Approving twice is a 409."""
    user = user_of(approver)
    if not isinstance(user, get_user_model()) or not user.is_authenticated:
        raise Forbidden("An approval names its user: approve with a user's token or in the admin.")
    named = selectors.get_target(target, field="target")
    clean_fields(Approval, {"comment": comment})
    if RegisteredModel.objects.select_for_update().filter(pk=version.model_id).first() is None:
        raise NotFound(f"Version '{version.version}' no longer exists: its model was deleted meanwhile.")
    found = ModelVersion.objects.select_related("model").filter(pk=version.pk).first()
    if found is None:
        raise NotFound(f"Version '{version.version}' no longer exists: it was deleted meanwhile.")
    if Approval.objects.filter(version=found, target=named, user=user).exists():
        raise Conflict(f"{user.get_username()} has approved {found} for '{named.name}' already.", field="target")
    approval = Approval.objects.create(version=found, target=named, user=user, comment=comment)
    audit.record(
        "approve",
        object_type="approval",
        object_repr=f"{found} for {named.name} by {user.get_username()}",
        model_name=found.model.name,
        changes={"approval": approval.pk, "target": named.name, "comment": comment},
    )
    return approval
