"""The shape of every error the API answers, in one place.

An error is always JSON: {"detail": "<one sentence>", "errors": {"<field>": ["<problem>", ...]}}, with
"errors" present when the problem belongs to named fields.
"""

from __future__ import annotations

import errno
import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry_site.errors import RegistryError, flatten

logger = logging.getLogger(__name__)


def error_response(message: str, status_code: int, errors: dict | None = None) -> Response:
    body: dict = {"detail": message}
    if errors:
        body["errors"] = errors
    return Response(body, status=status_code)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, UnreadablePostError) and isinstance(exc.__cause__, RegistryError):
        exc = exc.__cause__  # Django's request.read() re-raises a body reader's error (a 408) as this
    if isinstance(exc, RegistryError):
        return error_response(exc.message, exc.status_code, exc.errors)
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

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            detail = {"non_field_errors": detail}
        return error_response(f"Invalid input: {flatten(detail)}", status.HTTP_400_BAD_REQUEST, detail)

    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"detail": flatten(response.data.get("detail", response.data))}
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """No route matched: the API answers in JSON like everywhere else; the admin keeps its HTML page."""
    if request.path.startswith("/admin/"):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": "Not found."}, status=404)
