"""Who may do what, decided here for the API, the admin console and the services alike.

- CRUD follows from the view's model and the HTTP method (NetBox's perms_map): GET reads need
  `view_<model>`, POST `add_<model>`, PUT and PATCH `change_<model>`, DELETE `delete_<model>`.
- A view whose rows belong to another model's rows (a version's metric points) names that model in
  `permission_model`: reading them is viewing the version, recording one changing it.
- An action that is not CRUD declares the verb it needs beside its view, in `action_verbs`
  ({"rollback": "rollback"} needs deployments_app.rollback_deployment).
- `allows` is the one answer to "may this caller do that": a user's Django permissions (which give an
  active superuser every permission), the shell's operator everything, an anonymous caller everything
  only in local mode. Services that check a rule take the acting caller as a required argument and
  ask `allows` (deployments_app.services.deploy_version asks `may_deploy_to` about its target).
- A protected deployment target (deployments_app.models.Target.protected, `production` from the start)
  needs the deployer role's own permission on top of add_deployment: `may_deploy_to`. Which targets are
  protected is data, not a spelling: deploy_version resolves the name to its target first.

The roles are Django groups holding these permissions (registry_site.roles). In local mode (the
loopback-only default) the API is open, so the seed's examples run as written; in production every write
needs a token whose user holds the permission, and reads too unless REGISTRY_PUBLIC_READ is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.db import models
from rest_framework.permissions import SAFE_METHODS, BasePermission

if TYPE_CHECKING:  # rest_framework.views reads DEFAULT_PERMISSION_CLASSES, which names this module
    from rest_framework.request import Request
    from rest_framework.views import APIView

PERMS_MAP = {
    "GET": "view",
    "HEAD": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}
# Deploying to a protected target needs this besides add_deployment. Its codename predates the protected
# flag (it was "deploy to production"); the deployer and admin roles hold it.
DEPLOY_TO_PROTECTED = "deployments_app.deploy_to_production"
# A permission no role holds: what a route that cannot say what it needs requires, so it is closed to
# everyone but superusers (who hold every permission).
UNDECLARED = "registry_site.route_without_declared_permission"


class Caller(Protocol):
    """Who acts: a Django user (or AnonymousUser), or the shell's Operator."""

    @property
    def is_authenticated(self) -> bool: ...

    def has_perms(self, perm_list, obj=None) -> bool: ...


@dataclass(frozen=True)
class Operator:
    """Whoever runs manage.py on the server. Shell access to the registry's code, settings and database
    is operator authority: commands may do anything the registry's rules allow. The audit trail still
    names the operating-system user (registry_site.audit.acting_from_command)."""

    name: str = "operator"
    is_authenticated: bool = True
    is_active: bool = True

    def has_perms(self, perm_list, obj=None) -> bool:
        return True

    def has_perm(self, perm: str, obj=None) -> bool:
        return True

    def get_username(self) -> str:
        return self.name


def permission_for(model: type[models.Model], verb: str) -> str:
    """The permission's name: models_app.change_modelversion for (ModelVersion, "change")."""
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


def allows(caller: Caller, *perms: str) -> bool:
    """May `caller` act with all of `perms`? Superusers hold every permission (Django's has_perms), the
    operator too; an anonymous caller may act only where the registry is open (local mode)."""
    if not caller.is_authenticated:
        return settings.LOCAL_MODE
    return caller.has_perms(perms)


def may_deploy_to(caller: Caller, *, protected: bool) -> bool:
    """May `caller`, who may deploy, deploy to a target with this protected flag? The one rule for the
    API, the admin, the commands and the client alike (they all deploy through deploy_version)."""
    return not protected or allows(caller, DEPLOY_TO_PROTECTED)


def required_permissions(request: Request, view: APIView) -> list[str]:
    """The permissions a request to `view` needs: its action's declared verb, or its method's, on the
    view's model."""
    action = getattr(view, "action", None) or ""
    verb = getattr(view, "action_verbs", {}).get(action) or PERMS_MAP.get(request.method or "")
    # A view of rows that belong to another (a version's metric points) names whose permission guards them.
    model = getattr(view, "permission_model", None) or getattr(getattr(view, "queryset", None), "model", None)
    if verb is None or model is None:
        return [UNDECLARED]
    return [permission_for(model, verb)]


class RegistryPermission(BasePermission):
    """The API's gate: open in local mode, public reads when configured (never on `private_reads` views),
    otherwise the token's user must hold what `required_permissions` names."""

    message = "Your token's user lacks the permission for this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.LOCAL_MODE:
            return True
        if (
            request.method in SAFE_METHODS
            and settings.REGISTRY_PUBLIC_READ
            and not getattr(view, "private_reads", False)
        ):
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        return allows(user, *required_permissions(request, view))
