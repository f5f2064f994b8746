"""How request bodies are read: JSON strictly, multipart forms through the hashing upload handler."""

from __future__ import annotations

from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
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
