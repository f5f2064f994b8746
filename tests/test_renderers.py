"""registry_site.renderers: the API's JSON is written by orjson, and reads back as what DRF's renderer
writes; byte for byte where a client could tell (strings, escapes, times, decimals), and by DRF itself
where orjson cannot match it (an integer past 64 bits, an indented answer)."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from registry_site.renderers import RegistryJSONRenderer

SAMPLES = [
    {"name": "résumé ✓ 模型", "n": 3, "ok": True, "none": None, "nested": {"list": [1, 2.5, "x"], "empty": {}}},
    {"quote": 'a "b" \\ c\n\t\x01', "separators": "line\u2028para\u2029end", "emoji": "\U0001f600"},
    {"when": datetime.datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=datetime.UTC), "day": datetime.date(2026, 1, 2)},
    {"naive": datetime.datetime(2026, 11, 29, 1, 2, 3), "time": datetime.time(4, 5, 6, 7000)},
    {"price": decimal.Decimal("1.25"), "id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"lazy": gettext_lazy("This field is required."), 7: "an integer key", "tuple": (1, 2)},
    [0.1, 0.5, 1.0, -0.0, 123.456, 2**63 - 1, -(2**63)],
]


@pytest.mark.parametrize("data", SAMPLES)
def test_the_text_is_drfs(data):
    assert RegistryJSONRenderer().render(data) == JSONRenderer().render(data)


def test_a_float_reads_back_as_the_same_number():
    data = {"big": 1e16, "small": 1e-7, "precise": 0.30000000000000004, "huge": 1.7976931348623157e308}
    ours, drfs = RegistryJSONRenderer().render(data), JSONRenderer().render(data)
    assert json.loads(ours) == json.loads(drfs) == data


def test_what_orjson_cannot_write_is_written_by_drf():
    big = {"n": 2**64 + 1}
    assert RegistryJSONRenderer().render(big) == JSONRenderer().render(big) == b'{"n":18446744073709551617}'
    indented = RegistryJSONRenderer().render({"a": [1]}, "application/json; indent=2")
    assert indented == JSONRenderer().render({"a": [1]}, "application/json; indent=2") and b"\n" in indented
    assert RegistryJSONRenderer().render(None) == b""
    with pytest.raises(TypeError):
        RegistryJSONRenderer().render({"x": object()})  # DRF's own error for what no encoder knows


def test_the_api_answers_with_it(api, make_model):
    make_model("vision", description="chats ✓ \u2028")
    response = api.get("/models/vision")
    assert isinstance(response.accepted_renderer, RegistryJSONRenderer)
    assert response.content == JSONRenderer().render(response.data) and b"\\u2028" in response.content
