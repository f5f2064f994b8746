"""`Authorization: Bearer <token>` for scripts and CI, and the throttle on failed attempts."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from registry_site import audit
from registry_site.errors import InvalidInput
from registry_site.models import ApiToken
from registry_site.permissions import TokenCaller, TokenScope
from registry_site.throttling import take_attempt
from registry_site.validators import clean_fields

TOKEN_PREFIX = "mvr_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write a row on every request


def digest_of(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, a slow one would only cost every request.
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def issue_token(*, user, name: str, scope: TokenScope | None = None, expires_at=None) -> tuple[ApiToken, str]:
    """Create a token for `user` with `scope` (None: TokenScope.everything(), whatever the user may, as
    tokens were before they had scopes; `manage.py create_token` and the admin always name one). The
    user's roles are never changed here: a token only narrows them. The plain token is returned once and
    never stored; the audit trail records its scope."""
    scope = TokenScope.everything() if scope is None else scope
    fields = clean_fields(ApiToken, {"name": name, "expires_at": expires_at, **ApiToken.scope_fields(scope)})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user=user, prefix=token[:12], digest=digest_of(token), **fields)
    try:
        row.validate_constraints(exclude={"digest"})
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="scope") from None
    row.save()
    audit.record(
        "create_token",
        object_type="token",
        object_repr=f"{row.name} ({row.prefix}…)",
        changes={
            "user": user.get_username(),
            "expires_at": expires_at.isoformat() if expires_at else None,
            **row.scope.as_record(),
        },
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
    return f"token-failures:{audit.client_address(request)}"


class BearerTokenAuthentication(BaseAuthentication):
    """A valid token is always accepted: the failed-attempt counter of its address never refuses it (an
    admin on the same address as a client sending bad tokens keeps working). A bad token is a 401, or
    a 429 once its address has sent REGISTRY_AUTH_FAILURES_PER_MINUTE bad ones in the current minute.

    Tokens are 256 random bits, so the limit is not what keeps them from being guessed: it caps the work
    and the log lines one address can cause, and makes a misconfigured client loud. In local mode a token
    is still checked (a valid one acts as its user; a bad one is a 401, since the client meant to send
    it), but nothing is counted: the registry listens on loopback only and needs no token at all."""

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
        row = ApiToken.objects.select_related("user").filter(digest=digest_of(token)).first()
        if row is None or not row.is_usable or not row.user.is_active:
            self._fail(request, "Invalid, expired or revoked token.")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        audit.name_user(row.user.get_username())
        # The request acts with what both the user and the token's scope allow (permissions.TokenCaller).
        return TokenCaller(row.user, row.scope), row

    def authenticate_header(self, request):
        return self.keyword

    def _fail(self, request, message: str) -> NoReturn:
        if not settings.LOCAL_MODE:
            wait = take_attempt(_client_key(request), settings.REGISTRY_AUTH_FAILURES_PER_MINUTE)
            if wait is not None:
                raise exceptions.Throttled(
                    wait=wait, detail="Too many failed authentication attempts from this address."
                )
        raise exceptions.AuthenticationFailed(message)
