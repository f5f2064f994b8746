"""Rate limits on writes, per token user (or per address without one), in production."""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from registry_site.audit import client_address


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
