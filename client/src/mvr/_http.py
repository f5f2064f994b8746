"""One HTTP session to the registry: the token, timeouts, retries with backoff, and errors as exceptions.

Retried: connection failures, 408, 429, 500, 502, 503, 504, honouring `Retry-After`. A request that may
have reached the server before it failed (a read timeout, a connection dropped after the body was sent,
a 500/502/504) is retried only when repeating it is harmless: GET, PUT and DELETE, or a POST whose
caller says so (deploying the version already active changes nothing; creating something that exists
is a 409 the caller checks). 429 and 503 say the request was not processed, so any request is retried.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import requests

from mvr import __version__
from mvr.errors import ApiError, Conflict, NotAllowed, NotFound, TransportError

log = logging.getLogger("mvr")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NOT_PROCESSED_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_BACKOFF_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 120.0


def path(*segments: str) -> str:
    """A URL path from segments, each quoted whole (a version such as `v1.0+cpu` stays one segment)."""
    return "/" + "/".join(quote(str(segment), safe="") for segment in segments)


class BearerAuth(requests.auth.AuthBase):
    """The token as `Authorization: Bearer`. Set as the session's auth (not a default header), so a
    ~/.netrc entry cannot replace it, and requests drops it on a redirect to another host (an S3
    presigned URL must not see the registry's token)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:  # or an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_or_none(response: requests.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def error_for(response: requests.Response) -> ApiError:
    """The exception for an error answer, with the registry's own one-sentence `detail`."""
    body = _json_or_none(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if not detail:
        text = response.text.strip()[:200] if body is None else ""
        detail = f"{response.reason or 'error'}{': ' + text if text else ''}"
    message = f"{detail} (HTTP {response.status_code} from {response.request.method} {response.url})"
    status = response.status_code
    kind = {401: NotAllowed, 403: NotAllowed, 404: NotFound, 409: Conflict}.get(status, ApiError)
    return kind(message, status=status, body=body)


class Http:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retries: int = 5,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"The registry URL must start with http:// or https://, not {url!r}.")
        self.base = url.rstrip("/")
        self.retries = max(0, retries)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"mvr-client/{__version__} {requests.utils.default_user_agent()}"
        if token:
            self.session.auth = BearerAuth(token)

    def close(self) -> None:
        self.session.close()

    def retry_delay(self, attempt: int, response: requests.Response | None) -> float:
        after = _retry_after(response) if response is not None else None
        if after is not None:
            return min(after, MAX_RETRY_AFTER_SECONDS)
        delay = min(MAX_BACKOFF_SECONDS, self.backoff * 2**attempt)
        return delay * random.uniform(0.75, 1.25)  # spread the retries of many CI jobs

    def request(
        self,
        method: str,
        url_path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        body: Callable[[], Iterable[bytes] | bytes] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        timeout: float | None = None,
        retry_ambiguous: bool = False,
        ok_statuses: Iterable[int] = (),
        follow_redirects: bool | None = None,
        anonymous: bool = False,
    ) -> requests.Response:
        """Send a request, retrying as the module says, and return a 2xx response (or one of
        `ok_statuses`). `body` is called again for every attempt, so a file is read from its start each
        time. Raises ApiError (and subclasses) for error answers, TransportError when every attempt failed
        to get an answer. Redirects are followed for GET and HEAD unless `follow_redirects` says otherwise;
        `anonymous` sends no token (for a URL that carries its own authorisation, such as S3's)."""
        method = method.upper()
        url = url_path if url_path.startswith(("http://", "https://")) else self.base + url_path
        repeatable = method in IDEMPOTENT_METHODS or retry_ambiguous
        ok = set(ok_statuses)
        attempt = 0
        while True:
            response = None
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=body() if body is not None else None,
                    headers=headers,
                    stream=stream,
                    timeout=(self.connect_timeout, timeout or self.timeout),
                    # A POST redirected (http -> https) would silently become a GET: refuse instead.
                    allow_redirects=method in ("GET", "HEAD") if follow_redirects is None else follow_redirects,
                    auth=_no_token if anonymous else None,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                never_sent = isinstance(exc, requests.ConnectTimeout) or _refused(exc)
                if attempt >= self.retries or not (never_sent or repeatable):
                    raise TransportError(f"{method} {url} failed: {_reason(exc)}") from exc
                problem = _reason(exc)
            else:
                status = response.status_code
                if status < 300 or status in ok:
                    return response
                if 300 <= status < 400:
                    location = response.headers.get("Location", "?")
                    raise ApiError(
                        f"The registry redirected {method} {url} to {location}: set the registry URL to the "
                        "address it redirects to (e.g. https://).",
                        status=status,
                    )
                retryable = status in RETRY_STATUSES and (status in NOT_PROCESSED_STATUSES or repeatable)
                if attempt >= self.retries or not retryable:
                    raise error_for(response)
                problem = f"HTTP {status}"
                response.close()
            delay = self.retry_delay(attempt, response)
            attempt += 1
            log.warning(
                "%s %s: %s; retrying in %.1f s (attempt %d of %d)",
                method,
                url,
                problem,
                delay,
                attempt + 1,
                self.retries + 1,
            )
            self.sleep(delay)


def _no_token(request):
    return request


def _refused(exc: Exception) -> bool:
    """True when the connection was never made, so the server cannot have seen the request."""
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text or "NameResolutionError" in text


def _reason(exc: Exception) -> str:
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None)
    return str(reason or inner)
