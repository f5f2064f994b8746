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

A token carries its own scope (TokenScope: read, write, deploy (to named targets only, when it names
them), admin; and optionally only models whose name matches a glob). A request with a token acts as a
TokenCaller: its user narrowed to that scope, whose has_perms is the intersection of the two. It is DRF's
request.user, so every check above (the gate, `allows` in the services, `may_deploy_to`) applies the
scope without knowing a token was used, and a token never exceeds its user: a user who loses a role loses
it in every token at once. Which scope covers which permission is `scope_needed`. The model and target
limits apply where the name is known: the gate, from the URL or the body as the view declares
(`model_kwarg`, `model_body_fields`, `target_kwarg`), or from the object (a deployment's target);
lists and look-ups by id leave other models out (ModelScopeFilter, on the view's `model_name_field`);
`may_deploy_to` for the deploy's target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import models
from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import SAFE_METHODS, BasePermission

from registry_site.errors import InvalidInput

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


SCOPES = ("read", "write", "deploy", "admin")


def scope_needed(perm: str) -> str:
    """The token scope that covers `perm`: reading anything of the models or deployments is `read`;
    changing models and versions `write`; deploying and rolling back (deployments_app's other
    permissions, the protected-target one included) `deploy`; managing targets, the audit trail, tokens
    and users (registry_site's and auth's permissions), and any permission of an app the registry does
    not know yet, `admin`: an unknown permission is never covered by a narrower scope."""
    app_label, _, codename = perm.partition(".")
    verb, _, model = codename.partition("_")
    if app_label == "models_app":
        return "read" if verb == "view" else "write"
    if app_label == "deployments_app":
        if verb == "view":
            return "read"
        return "admin" if model == "target" else "deploy"
    return "admin"


@dataclass(frozen=True)
class TokenScope:
    """What a token may do, at most: its scopes, the targets its deploy scope is limited to (empty:
    every target) and the glob its models' names must match (empty: every model). Stored on
    registry_site.models.ApiToken."""

    read: bool = False
    write: bool = False
    deploy: bool = False
    admin: bool = False
    deploy_targets: tuple[str, ...] = ()
    model_pattern: str = ""

    @classmethod
    def everything(cls) -> TokenScope:
        """Whatever the token's user may: what every token could before tokens had scopes."""
        return cls(read=True, write=True, deploy=True, admin=True)

    @classmethod
    def parse(cls, words: Iterable[str], *, models: str = "") -> TokenScope:
        """From `manage.py create_token`'s words: read, write, deploy, deploy:staging,qa, admin, or all
        (every scope). Each scope once; at least one. The names' own rules are the token's fields'
        (ApiToken.full_clean)."""
        given: dict[str, Any] = {}
        targets: tuple[str, ...] = ()
        for word in words:
            scope, colon, rest = word.partition(":")
            names = SCOPES if scope == "all" and not colon else (scope,)
            if scope not in (*SCOPES, "all") or (colon and scope != "deploy"):
                raise InvalidInput(
                    f"Unknown scope '{word}'; use read, write, deploy, deploy:TARGET[,TARGET...], admin or all.",
                    field="scope",
                )
            for name in names:
                if name in given:
                    raise InvalidInput(f"The {name} scope is given twice.", field="scope")
                given[name] = True
            if colon:
                if not rest:
                    raise InvalidInput(
                        "'deploy:' names no target; name them (deploy:staging,qa) or give deploy.", field="scope"
                    )
                targets = tuple(rest.split(","))
        if not given:
            raise InvalidInput("Give the token at least one scope: read, write, deploy or admin.", field="scope")
        return cls(**given, deploy_targets=targets, model_pattern=models)

    def covers(self, perm: str) -> bool:
        return bool(getattr(self, scope_needed(perm)))

    def covers_model(self, name: str) -> bool:
        return not self.model_pattern or fnmatchcase(name, self.model_pattern)

    def model_refusal(self, name: str) -> str | None:
        if self.covers_model(name):
            return None
        return f"This token is limited to models matching '{self.model_pattern}'; '{name}' is not one."

    def covers_target(self, name: str) -> bool:
        """Target names compare ignoring case, as the targets themselves do."""
        return not self.deploy_targets or name.lower() in {target.lower() for target in self.deploy_targets}

    def target_refusal(self, name: str) -> str | None:
        if self.covers_target(name):
            return None
        return f"This token's deploy scope covers only {', '.join(self.deploy_targets)}, not '{name}'."

    def model_regex(self) -> str:
        """The model pattern as a regular expression that means the same in Python and in PostgreSQL
        (anchored; only letters, digits and '_' unescaped)."""
        parts = []
        for char in self.model_pattern:
            if char == "*":
                parts.append(".*")
            elif char == "?":
                parts.append(".")
            elif char.isascii() and (char.isalnum() or char == "_"):
                parts.append(char)
            else:
                parts.append("\\" + char)
        return "^" + "".join(parts) + "$"

    @property
    def words(self) -> list[str]:
        """The scopes as create_token takes them: ['read', 'deploy:staging']."""
        words = [name for name in SCOPES if getattr(self, name)]
        if self.deploy_targets:
            words[words.index("deploy")] = "deploy:" + ",".join(self.deploy_targets)
        return words

    def __str__(self) -> str:
        text = " ".join(self.words)
        return f"{text}; models {self.model_pattern}" if self.model_pattern else text

    def as_record(self) -> dict[str, Any]:
        """For the audit trail."""
        return {"scopes": self.words, "models": self.model_pattern or None}


class TokenCaller:
    """Who acts in a request that came with a token: the token's user, narrowed to the token's scope.
    Everything but the permissions is the user's (its name, id, state)."""

    def __init__(self, user: Any, scope: TokenScope) -> None:
        self.user = user
        self.scope = scope

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)

    def __str__(self) -> str:
        return str(self.user)

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user.is_authenticated)

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(self.scope.covers(perm) for perm in perm_list) and self.user.has_perms(perm_list, obj)

    def has_perm(self, perm: str, obj=None) -> bool:
        return self.has_perms([perm], obj)


def scopes_beyond(user: Any, scope: TokenScope) -> list[str]:
    """The scopes of `scope` in which `user` holds no permission at all: until the user gets a role that
    gives some, they let the token do nothing."""
    held = {scope_needed(perm) for perm in user.get_all_permissions()}
    return [name for name in SCOPES if getattr(scope, name) and name not in held]


def user_of(caller: Any) -> Any:
    """The user who acts: a token's own user (for what records a person, such as an approval), or the
    caller itself."""
    return caller.user if isinstance(caller, TokenCaller) else caller


def token_scope(caller: Any) -> TokenScope | None:
    """The scope of the token the caller came with; None for anyone else (admin users, the operator)."""
    return caller.scope if isinstance(caller, TokenCaller) else None


def permission_for(model: type[models.Model], verb: str) -> str:
    """The permission's name: models_app.change_modelversion for (ModelVersion, "change")."""
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


def allows(caller: Caller, *perms: str) -> bool:
    """May `caller` act with all of `perms`? Superusers hold every permission (Django's has_perms), the
    operator too; an anonymous caller may act only where the registry is open (local mode)."""
    if not caller.is_authenticated:
        return settings.LOCAL_MODE
    return caller.has_perms(perms)


def deploy_refusal(caller: Caller, *, target: str, protected: bool) -> str | None:
    """Why `caller`, who may deploy, may not deploy to `target` (a known target's own name, with its
    protected flag), or None when it may. The one rule for the API, the admin, the commands and the
    client alike (they all deploy through deploy_version): a token's deploy scope may name the targets
    it covers, and a protected target needs the deployer role's permission."""
    scope = token_scope(caller)
    refusal = scope.target_refusal(target) if scope is not None else None
    if refusal is not None:
        return refusal
    if protected and not allows(caller, DEPLOY_TO_PROTECTED):
        return f"Target '{target}' is protected: deploying to it needs the deployer role."
    return None


def may_deploy_to(caller: Caller, *, target: str, protected: bool) -> bool:
    return deploy_refusal(caller, target=target, protected=protected) is None


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


def _model_named(request: Request, view: APIView) -> str | None:
    """The model a request names in its URL (the view's `model_kwarg`) or, for the actions that create
    one or deploy, in its body (`model_body_fields`, {action: field}); None when it names none (a
    missing or malformed name is the view's to refuse)."""
    kwarg = getattr(view, "model_kwarg", None)
    if kwarg is not None and kwarg in view.kwargs:
        return view.kwargs[kwarg]
    field = getattr(view, "model_body_fields", {}).get(getattr(view, "action", None))
    if field is None:
        return None
    data = request.data
    value = data.get(field) if hasattr(data, "get") else None
    return value if isinstance(value, str) else None


def _needs_deploy(perms: list[str]) -> bool:
    return any(scope_needed(perm) == "deploy" for perm in perms)


def scope_refusal(scope: TokenScope, request: Request, view: APIView, perms: list[str]) -> str | None:
    """Why the token's scope does not cover this request, or None."""
    missing = [name for name in SCOPES if any(scope_needed(perm) == name and not scope.covers(perm) for perm in perms)]
    if missing:
        return (
            f"This token's scope is {' '.join(scope.words)}: {request.method} {request.path} needs the "
            f"{' and '.join(missing)} scope."
        )
    model = _model_named(request, view)
    if model is not None and not scope.covers_model(model):
        return scope.model_refusal(model)
    target = view.kwargs.get(getattr(view, "target_kwarg", None) or "")
    return scope.target_refusal(target) if target is not None and _needs_deploy(perms) else None


def publicly_readable(request: Request, view: APIView) -> bool:
    """A read that REGISTRY_PUBLIC_READ lets through without a token (and so with any token, whatever its
    scope): never the `private_reads` views'."""
    return (
        request.method in SAFE_METHODS and settings.REGISTRY_PUBLIC_READ and not getattr(view, "private_reads", False)
    )


def check_models_in_scope(request: Request, view: APIView, names: Iterable[str]) -> None:
    """For a request naming several models (GET /compare): a token limited to a model pattern must
    cover each of them; a 403 naming the first that is not."""
    scope = token_scope(request.user)
    if settings.LOCAL_MODE or scope is None or publicly_readable(request, view):
        return
    for name in names:
        refusal = scope.model_refusal(name)
        if refusal is not None:
            raise exceptions.PermissionDenied(refusal)


class RegistryPermission(BasePermission):
    """The API's gate: open in local mode, public reads when configured (never on `private_reads` views),
    otherwise the token's user must hold what `required_permissions` names, and the token's scope cover
    it (scope_refusal). A refusal's message says which of the two refused."""

    message = "Your token's user lacks the permission for this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.LOCAL_MODE or publicly_readable(request, view):
            return True
        caller = request.user
        if caller is None or not caller.is_authenticated:
            return False
        perms = required_permissions(request, view)
        if not isinstance(caller, TokenCaller):
            return allows(caller, *perms)
        # The user's roles first, then the token's scope: the message says which one refused.
        if not allows(caller.user, *perms):
            return False
        refusal = scope_refusal(caller.scope, request, view, perms)
        if refusal is not None:
            self.message = refusal
            return False
        return True

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        """A deploy-scope action on an object that is on a target (rolling a deployment back) needs
        the token's deploy scope to cover that target."""
        scope = token_scope(request.user)
        target = getattr(obj, "deployment_target_id", None)
        if settings.LOCAL_MODE or scope is None or target is None:
            return True
        refusal = scope.target_refusal(target) if _needs_deploy(required_permissions(request, view)) else None
        if refusal is not None:
            self.message = refusal
            return False
        return True


class ModelScopeFilter(BaseFilterBackend):
    """Lists, and look-ups by id, of a token limited to a model pattern leave the other models out: the
    view's `model_name_field` is the field holding the model's name (`model__name` for deployments)."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: APIView) -> QuerySet:
        regex = model_scope_regex(request, view)
        field = getattr(view, "model_name_field", None)
        return queryset if regex is None else queryset.filter(**{f"{field}__regex": regex})


def model_scope_regex(request: Request, view: APIView) -> str | None:
    """The pattern of model names that ModelScopeFilter keeps in the view's lists; None when it keeps
    every model (local mode, a token without a model pattern, a public read)."""
    scope = token_scope(request.user)
    if settings.LOCAL_MODE or scope is None or not scope.model_pattern:
        return None
    if getattr(view, "model_name_field", None) is None or publicly_readable(request, view):
        return None
    return scope.model_regex()
