"""Who may call what. In local mode (the loopback-only default) the API is open, so the seed's
examples run as written. In production every write needs a token whose user holds the Django
permission the action names; reads need one too unless REGISTRY_PUBLIC_READ is set. The roles are
Django groups (viewer, editor, deployer, admin; see the 0002 migration of registry_site), and the admin
console checks the same permissions."""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.throttling import SimpleRateThrottle

from registry_site.audit import client_address

PRODUCTION_TARGET = "production"
DEPLOY_TO_PRODUCTION = "deployments_app.deploy_to_production"


class RegistryPermission(BasePermission):
    """Each view names the permissions of its actions in `required_permissions` ({action: [perm]})."""

    message = "Your token's user lacks the permission for this action."

    def has_permission(self, request, view) -> bool:
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
        action = getattr(view, "action", None) or request.method.lower()
        required = getattr(view, "required_permissions", {})
        needed = required.get(f"{action}:{request.method.lower()}", required.get(action))
        if needed is None:
            # A route that forgot to say what it needs is closed, not open.
            return user.is_superuser
        return user.has_perms(needed)


class WriteRateThrottle(SimpleRateThrottle):
    """Writes per token user (or per address without one), in production. The counts live in the
    shared cache (the database cache by default), so every worker sees the same numbers."""

    scope = "write"

    def get_rate(self):
        return settings.REGISTRY_THROTTLE_WRITES

    def allow_request(self, request, view):
        if settings.LOCAL_MODE or request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        user = request.user
        ident = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{client_address(request)}"
        return f"registry:throttle:write:{ident}"
