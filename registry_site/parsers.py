"""How request bodies are read: JSON strictly, multipart forms through the hashing upload handler."""

from __future__ import annotations

import functools

from django.http import multipartparser
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.http import parse_header_parameters
from rest_framework import exceptions
from rest_framework.parsers import DataAndFiles, JSONParser, MultiPartParser

from registry_site.errors import RegistryError


class StrictJSONParser(JSONParser):
    """DRF's parser (which already refuses NaN and Infinity), except that a body nested deeper than
    Python's recursion limit is a 400 and not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None


# Django's multipart parser reads every part's header lines (`Content-Disposition: form-data;
# name="version"`) with parse_header_parameters, which builds an email.message.Message for each: about
# 40 us a line, a dozen lines for the seed's form, a twentieth of a registration's CPU (issue #12). The
# same lines come again and again: the parser module looks them up here first. The parser only reads
# the parameters it gets back (it copies them into a dict of its own), so one result serves every call.
_parse_header_line = functools.lru_cache(maxsize=1024)(parse_header_parameters)
if multipartparser.parse_header_parameters is parse_header_parameters:  # type: ignore[attr-defined]
    multipartparser.parse_header_parameters = _parse_header_line  # type: ignore[attr-defined]


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
        except RegistryError:
            raise  # the upload handler's own refusal (a body cut short...), naming its field
        except MultiPartParserError as exc:
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from None
        return DataAndFiles(data, files)
