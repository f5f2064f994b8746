"""Reads of the deployment history and of the targets that more than one front door shares."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.functions import Lower

from deployments_app.models import Deployment, DeploymentStatus, Target, target_validator
from registry_site.errors import InvalidInput, NotFound

# An unknown target's message lists the known ones, up to this many.
KNOWN_TARGETS_LISTED = 50


def deployment_not_found(pk: int) -> NotFound:
    return NotFound(f"Deployment {pk} not found.")


def get_deployment(pk: int) -> Deployment:
    try:
        return Deployment.objects.select_related("model", "model_version").get(pk=pk)
    except Deployment.DoesNotExist:
        raise deployment_not_found(pk) from None


def targets() -> QuerySet[Target]:
    """Every target, in display order."""
    return Target.objects.order_by("display_order", "name")


def known_targets_text() -> str:
    names = list(targets().values_list("name", flat=True)[: KNOWN_TARGETS_LISTED + 1])
    if not names:
        return "no target is defined yet (an admin creates them: POST /targets, the admin, manage.py targets)"
    more = ", …" if len(names) > KNOWN_TARGETS_LISTED else ""
    return ", ".join(names[:KNOWN_TARGETS_LISTED]) + more


def is_target_name(name: str) -> bool:
    try:
        target_validator(name)
    except ValidationError:
        return False
    return True


def find_target(name: str) -> Target | None:
    """The target called `name`, whatever its case (`Production` is `production`), or None."""
    return Target.objects.annotate(folded=Lower("name")).filter(folded=name.lower()).first()


def get_target(name: str, *, field: str = "target") -> Target:
    """The target called `name` (ignoring case), for every front door that deploys or names a target:
    a name that is not a valid target name, or no known target's, is a 400 on `field` that lists the
    known targets."""
    try:
        target_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {' '.join(exc.messages)}", field=field) from None
    target = find_target(name)
    if target is None:
        raise InvalidInput(f"Unknown target '{name}'; the known targets are: {known_targets_text()}.", field=field)
    return target


def target_not_found(name: str) -> NotFound:
    return NotFound(f"Target '{name}' not found; the known targets are: {known_targets_text()}.")


def get_target_or_404(name: str) -> Target:
    """The target named in a URL path: a missing one is a 404 (the resource is not there)."""
    target = find_target(name) if is_target_name(name) else None
    if target is None:
        raise target_not_found(name)
    return target


def active_deployment(model_id: int, target: Target) -> Deployment | None:
    return (
        Deployment.objects.select_related("model", "model_version__model", "model_version__artifact")
        .filter(model_id=model_id, deployment_target=target, deployment_status=DeploymentStatus.ACTIVE)
        .first()
    )
