"""The API's JSON, written by orjson (issue #12): DRF's JSONRenderer spent a tenth of a page of versions'
CPU in json.dumps. The text is DRF's in every respect a client can tell (compact, UTF-8, U+2028 and
U+2029 escaped, times, decimals and lazy text converted by DRF's own encoder), except that a float is
written in its shortest form (1e16, where Python writes 1e+16: the same number). Whatever orjson does not
write exactly as DRF would, an integer beyond 64 bits or an indented answer (`Accept:
application/json; indent=4`), is written by DRF's renderer as before. tests/test_renderers.py compares."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class RegistryJSONRenderer(JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if (
            data is None
            or self.ensure_ascii
            or not self.compact
            or self.get_indent(accepted_media_type or "", renderer_context or {}) is not None
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            text = orjson.dumps(data, default=_DRF_ENCODER.default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)  # DRF's text, or DRF's error
        if b"\xe2\x80" in text:  # JavaScript's line separators, escaped as DRF escapes them
            for raw, escaped in _LINE_SEPARATORS:
                text = text.replace(raw, escaped)
        return text


_DRF_ENCODER = JSONEncoder()
