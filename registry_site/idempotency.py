"""`Idempotency-Key` on POST requests: a client that did not get an answer (a timeout, a dropped
connection) sends the same request again with the same key, and gets the first answer again instead of
a second deployment, rollback or model.

- The key belongs to who sent it (the token's user, or "anonymous" in local mode) and to the method and
  path: the same key elsewhere, or from someone else, is another key.
- A retry with the same key and the same request (query and body: a JSON body by its content, whatever
  its spacing or key order; a form by its fields, each file by the sha256 computed while it streamed in)
  gets the recorded status, body and headers, plus `Idempotent-Replayed: true`, and changes nothing.
- The same key with another request is a 422 naming the header; while the first request is still being
  handled, a second one with its key is a 409 (PostgreSQL; SQLite runs one write at a time, so the second
  waits for the first and then gets its answer).
- Only a successful answer (2xx) is recorded, in the transaction of the change it answers: a change
  never commits without its answer, nor an answer without its change. A refused request changed
  nothing, so its key is not spent: a retry is handled afresh.
- Answers are kept REGISTRY_IDEMPOTENCY_KEY_HOURS (24 h); `manage.py purge_idempotency_keys` deletes the
  expired ones.

The viewsets take it by inheriting IdempotentPostsMixin; the schema documents the header on their POST
operations (registry_site.schema).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.http import HttpResponse, HttpResponseBase
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry_site.errors import Conflict, InvalidInput, Unprocessable
from registry_site.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, as an opaque token (a UUID is typical); the schema states the same rule.
KEY_PATTERN = "^[!-~]+$"
KEY_MAX_LENGTH = 255
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH, "pattern": KEY_PATTERN}
KEY_DESCRIPTION = (
    "Any unique string (a UUID, say) of 1-255 visible ASCII characters. A retry of this request with the "
    "same key gets the first successful answer again, with `Idempotent-Replayed: true`, and changes nothing; "
    "the same key with another body is a 422, and while the first request is being handled a 409. Keys "
    "belong to the token's user and to this method and path, and are kept 24 hours."
)
_KEY = re.compile(r"[!-~]{1,%d}" % KEY_MAX_LENGTH)
# Headers of the answer that are not replayed as recorded: the body's own, set again from the record.
_NOT_RECORDED = frozenset({"content-type", "content-length"})


class IdempotentPostsMixin(APIView):
    """For a viewset whose POST actions honour Idempotency-Key. DRF authenticates, checks permissions
    and throttles in initial() and looks the handler up by method name afterwards: wrapping the handler
    here puts the key after all of those (so the key's owner is known), and the recorded answer inside
    the handler's transaction."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        handler = getattr(self, "post", None)
        if request.method == "POST" and key is not None and handler is not None:

            def once(request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
                return answer_once(self, handler, key, request, *args, **kwargs)

            self.post = once  # type: ignore[attr-defined]


def answer_once(view: APIView, handler, key: str, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"The {HEADER} header must be 1-{KEY_MAX_LENGTH} visible ASCII characters (a UUID, say).", field=HEADER
        )
    owner = f"user:{request.user.pk}" if request.user.is_authenticated else "anonymous"
    scope = _scope(owner, request.method or "POST", request.path, key)
    digest = request_digest(request)  # parses the body (an upload streams in and is hashed) before any lock
    recorded = _recorded(scope)
    if recorded is not None:
        return _replay(recorded, digest)
    with transaction.atomic():
        if not _claim(scope):
            raise Conflict(
                f"A request with this {HEADER} is still being handled; retry once it has been answered.",
                field=HEADER,
            )
        recorded = _recorded(scope)  # answered while this request waited for its transaction
        if recorded is not None:
            return _replay(recorded, digest)
        response = handler(request, *args, **kwargs)
        if 200 <= response.status_code < 300 and not response.streaming:
            _record(view, request, response, scope=scope, owner=owner, key=key, digest=digest)
        return response


def _scope(owner: str, method: str, path: str, key: str) -> str:
    return hashlib.sha256(json.dumps([owner, method, path, key]).encode()).hexdigest()


def request_digest(request: Request) -> str:
    """sha256 of what a request asks for: its media type, query string and body as parsed. A form's file
    counts by the sha256 and size computed while it streamed in, so no file is read a second time."""
    data = request.data
    if hasattr(data, "lists"):  # a form (or no body): every field's values, in the order sent
        body: Any = sorted([name, [_form_value(value) for value in values]] for name, values in data.lists())
    else:
        body = data
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    canonical = json.dumps(
        [media_type, request.META.get("QUERY_STRING", ""), body], sort_keys=True, separators=(",", ":"), default=repr
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _form_value(value: Any) -> Any:
    if not isinstance(value, UploadedFile):
        return value
    digest = getattr(value, "sha256", None)  # models_app's upload handler computed it on the way in
    if digest is None:  # another upload handler: hash it in chunks, never whole in memory
        hasher = hashlib.sha256()
        for chunk in value.chunks():
            hasher.update(chunk)
        value.seek(0)
        digest = hasher.hexdigest()
    return {"file": value.name, "size": value.size, "sha256": digest}


def _recorded(scope: str) -> IdempotencyKey | None:
    return IdempotencyKey.objects.filter(scope=scope, expires_at__gt=timezone.now()).first()


def _claim(scope: str) -> bool:
    """Inside the transaction that will do the work: whether this request may do it. PostgreSQL: a
    transaction-level advisory lock on the scope, taken without waiting (taken: a concurrent request
    with the same key holds it), released when the work commits or rolls back, also if the process
    dies. SQLite: this IMMEDIATE transaction already excludes every other writer."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [int(scope[:15], 16)])
        return bool(cursor.fetchone()[0])


def _replay(recorded: IdempotencyKey, digest: str) -> HttpResponse:
    if recorded.request_digest != digest:
        raise Unprocessable(
            f"This {HEADER} was already used for another request to {recorded.method} {recorded.path} "
            "(another body or query); send a new key with a new request.",
            field=HEADER,
        )
    response = HttpResponse(bytes(recorded.body), status=recorded.status_code)
    if recorded.content_type:
        response["Content-Type"] = recorded.content_type
    else:
        del response["Content-Type"]
    for name, value in recorded.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _record(
    view: APIView, request: Request, response: HttpResponseBase, *, scope: str, owner: str, key: str, digest: str
) -> None:
    if isinstance(response, Response):
        # Rendered now exactly as DRF will render it for the client (same renderer, same media type).
        response.accepted_renderer = request.accepted_renderer
        response.accepted_media_type = request.accepted_media_type
        response.renderer_context = view.get_renderer_context()  # type: ignore[attr-defined]
        body = response.rendered_content
    else:
        body = response.content  # type: ignore[attr-defined]
    IdempotencyKey.objects.filter(scope=scope).delete()  # an expired record of the same key
    now = timezone.now()
    IdempotencyKey.objects.create(
        scope=scope,
        owner=owner,
        method=request.method or "POST",
        path=request.path,
        key=key,
        request_digest=digest,
        status_code=response.status_code,
        content_type=response.get("Content-Type", ""),
        headers={name: value for name, value in response.items() if name.lower() not in _NOT_RECORDED},
        body=body,
        created_at=now,
        expires_at=now + timedelta(hours=settings.REGISTRY_IDEMPOTENCY_KEY_HOURS),
    )


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete the recorded answers whose time is up; how many. (Expired ones are never replayed anyway.)"""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
