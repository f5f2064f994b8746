"""What every API endpoint shares: JSON parsing, pagination and the shape of an error.

An error is always JSON: {"detail": "<one sentence>", "errors": {"<field>": ["<problem>", ...]}}, with
"errors" present when the problem belongs to named fields.
"""

from __future__ import annotations

import errno
import json
import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.views import defaults
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import DataAndFiles, JSONParser, MultiPartParser
from rest_framework.response import Response

from registry_site.errors import RegistryError

logger = logging.getLogger(__name__)


class StrictJSONParser(JSONParser):
    """DRF's parser (which already refuses NaN and Infinity), except that a body nested deeper than
    Python's recursion limit is a 400 and not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None


class _KeepEveryFilePart(DjangoMultiPartParser):
    """Django drops a file part whose client file name sanitizes to nothing ("..", "."), so a version
    would be registered without the file the client sent. The name is only metadata here (files are
    stored under their sha256): keep the part under a neutral name instead."""

    def sanitize_file_name(self, file_name):
        return super().sanitize_file_name(file_name) or "model-file"


class RegistryMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", "utf-8")
        try:
            data, files = _KeepEveryFilePart(meta, stream, request.upload_handlers, encoding).parse()
        except MultiPartParserError as exc:
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from None
        return DataAndFiles(data, files)


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, refusing query parameters it does not know: a misspelt filter (?stauts=approved)
    would otherwise return the whole unfiltered list as if it had matched."""

    always_allowed = frozenset({"cursor", "page_size"})

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = self.always_allowed | set(getattr(view, "extra_query_params", ()))
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise exceptions.ValidationError({key: [f"Unknown query parameter; known: {known}."] for key in unknown})
        return super().filter_queryset(request, queryset, view)


class RegistryCursorPagination(CursorPagination):
    """Cursor pages: stable under concurrent inserts and O(page) however long the list grows. The order
    comes from the view's `ordering`, which must end in a unique column."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        return view.ordering


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def error_response(message: str, status_code: int, errors: dict | None = None) -> Response:
    body: dict = {"detail": message}
    if errors:
        body["errors"] = errors
    return Response(body, status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, UnreadablePostError) and isinstance(exc.__cause__, RegistryError):
        exc = exc.__cause__  # Django's request.read() re-raises a body reader's error as this
    if isinstance(exc, RegistryError):
        errors = {exc.field: [exc.message]} if exc.field else None
        return error_response(exc.message, exc.status_code, errors)
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
        exc = exceptions.NotFound(str(exc) or None)

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            detail = {"non_field_errors": detail}
        return error_response(f"Invalid input: {_flatten(detail)}", status.HTTP_400_BAD_REQUEST, detail)

    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (which names this module) when
    # it is first imported, so importing it at the top would make this module's import order matter.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"detail": _flatten(response.data.get("detail", response.data))}
    return response


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json_text(value: str):
    """JSON given as text inside a form field (the seed sends shapes this way); NaN and Infinity are
    refused as in JSON bodies. Raised errors attach to the field being validated."""
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except RecursionError:
        raise exceptions.ValidationError("The JSON is nested too deeply.") from None
    except ValueError as exc:
        raise exceptions.ValidationError(f"Not valid JSON: {exc}") from None


def not_found(request, exception):
    """No route matched: the API answers in JSON like everywhere else; the admin keeps its HTML page."""
    if request.path.startswith("/admin/"):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": "Not found."}, status=404)
