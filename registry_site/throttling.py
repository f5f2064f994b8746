"""Rate limits: writes per token user (or per address without one), in production; and failed sign-ins
(bad API tokens, admin logins), counted per address and per username in one-minute windows."""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from registry_site.audit import client_address
from registry_site.models import FailureCounter

FAILURE_WINDOW = timedelta(seconds=60)
# Counters of addresses that stopped trying are removed when a new one starts, after this long.
FAILURE_ROWS_KEPT = timedelta(hours=1)


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


def take_attempt(key: str, limit: int) -> int | None:
    """Count one failure against `key` unless `limit` failures were already counted in its window: None
    when it was counted (the caller may go on), else the whole seconds until the window ends (the
    attempt is refused and not counted, so the window never moves and that figure is the truth).

    The row is read under its lock (select_for_update; SQLite's IMMEDIATE transaction takes the write
    lock), so however many attempts arrive together, exactly `limit` are counted in a window."""
    with transaction.atomic():
        row = FailureCounter.objects.select_for_update().filter(key=key).first()
        now = timezone.now()
        if row is None:
            try:
                with transaction.atomic():
                    FailureCounter.objects.create(key=key, window_started=now, failures=1)
            except IntegrityError:  # another attempt made it first: queue on its lock
                row = FailureCounter.objects.select_for_update().get(key=key)
                now = timezone.now()
            else:
                FailureCounter.objects.filter(window_started__lt=now - FAILURE_ROWS_KEPT).delete()
                return None
        if row.window_started <= now - FAILURE_WINDOW:
            row.window_started, row.failures = now, 1
        elif row.failures >= limit:
            return max(1, math.ceil((row.window_started + FAILURE_WINDOW - now).total_seconds()))
        else:
            row.failures += 1
        row.save(update_fields=["window_started", "failures"])
        return None


def give_back(key: str) -> None:
    """Uncount an attempt that take_attempt counted in advance and that turned out to succeed."""
    FailureCounter.objects.filter(key=key, failures__gt=0).update(failures=F("failures") - 1)
