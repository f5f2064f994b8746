"""The shape of every error the API answers, in one place.

An error is always JSON: {"detail": "<one sentence>", "errors": {"<field>": ["<problem>", ...]}}, with
"errors" present when the problem belongs to named fields. That holds for errors Django answers before or
after a view too (a refused Host header, no route, an unhandled exception): only the admin's pages keep
Django's HTML error pages.
"""

from __future__ import annotations

import errno
import logging

from django.core.exceptions import DisallowedHost, ObjectDoesNotExist, RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry_site.errors import RegistryError, flatten

logger = logging.getLogger(__name__)


def error_response(message: str, status_code: int, errors: dict | None = None, extra: dict | None = None) -> Response:
    body: dict = {"detail": message}
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    return Response(body, status=status_code)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, UnreadablePostError) and isinstance(exc.__cause__, RegistryError):
        exc = exc.__cause__  # Django's request.read() re-raises a body reader's error (a 408) as this
    if isinstance(exc, RegistryError):
        return error_response(exc.message, exc.status_code, exc.errors, exc.body())
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        logger.error("storage is full: %s", exc)
        return error_response("The registry's storage is full; nothing was stored.", 507)
    if isinstance(exc, RequestDataTooBig):
        return error_response("The request body is larger than this registry accepts.", 413)
    if isinstance(exc, TooManyFieldsSent):
        return error_response("The request has too many form fields.", 400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        # Django's "No RegisteredModel matches the given query." names a class, not the thing sought: the
        # views say that themselves (selectors' *_not_found), anything else is just not found.
        message = str(exc)
        exc = exceptions.NotFound(None if not message or message.endswith("matches the given query.") else message)
    if isinstance(exc, ObjectDoesNotExist):
        # A row that was there when the request began and is gone now: another request deleted it.
        return error_response("Not found: it was deleted while this request was being handled.", 404)

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            detail = {"non_field_errors": detail}
        return error_response(f"Invalid input: {flatten(detail)}", status.HTTP_400_BAD_REQUEST, detail)

    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"detail": flatten(response.data.get("detail", response.data))}
    return response


# Django's own error views (registry_site.urls sets them), for what happens outside a DRF view or escapes
# it: the API answers in JSON like everywhere else; the admin keeps its HTML pages.
def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """No route matched."""
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": "Not found."}, status=404)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A request Django refuses before any view: a Host header not in ALLOWED_HOSTS (DNS rebinding), a
    malformed body or cookie."""
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        detail = "The Host header names no host this registry serves (REGISTRY_ALLOWED_HOSTS)."
    else:
        detail = "Bad request: the request could not be read."
    return JsonResponse({"detail": detail}, status=400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_admin(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse({"detail": str(exception) or "Permission denied."}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """An unhandled exception (a bug): Django has logged it with its traceback (django.request); the client
    gets JSON without the details."""
    if _is_admin(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": "Internal server error; it has been logged."}, status=500)
