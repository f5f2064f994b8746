"""`Authorization: Bearer <token>` for scripts and CI, and the throttle on failed attempts."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from registry_site import audit
from registry_site.models import ApiToken

TOKEN_PREFIX = "mvr_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write a row on every request


def digest_of(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, a slow one would only cost every request.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(*, user, name: str, expires_at=None) -> tuple[ApiToken, str]:
    """Create a token for `user`; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, prefix=token[:12], digest=digest_of(token), expires_at=expires_at
    )
    audit.record(
        "create_token",
        object_type="token",
        object_repr=f"{row.name} ({row.prefix}…)",
        changes={"user": user.get_username(), "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return row, token


def revoke_token(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            "revoke_token",
            object_type="token",
            object_repr=f"{token.name} ({token.prefix}…)",
            changes={"user": token.user.get_username()},
        )
    return token


def _client_key(request) -> str:
    return f"registry:auth-failures:{audit.client_address(request)}"


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            self._fail(request, "Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            self._fail(request, "Malformed token.")
        self._refuse_if_throttled(request)
        row = ApiToken.objects.select_related("user").filter(digest=digest_of(token)).first()
        if row is None or not row.is_usable or not row.user.is_active:
            self._fail(request, "Invalid, expired or revoked token.")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        audit.name_user(row.user.get_username())
        return row.user, row

    def authenticate_header(self, request):
        return self.keyword

    def _refuse_if_throttled(self, request) -> None:
        limit = settings.REGISTRY_AUTH_FAILURES_PER_MINUTE
        if cache.get(_client_key(request), 0) >= limit:
            raise exceptions.Throttled(wait=60, detail="Too many failed authentication attempts; wait a minute.")

    def _fail(self, request, message: str):
        key = _client_key(request)
        if cache.add(key, 1, timeout=60) is False:
            try:
                cache.incr(key)
            except ValueError:  # expired in between
                cache.add(key, 1, timeout=60)
        raise exceptions.AuthenticationFailed(message)
