"""JSON that clients send: parsed strictly when it arrives as text, and walked (once, without recursion)
for what the rules need to know about it: how deep it is, whether it holds a number that is not finite,
and whether it holds text no database can store. And JSON read back from the database, fast."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import models

# JSON escapes can spell text that no database stores: NUL (PostgreSQL refuses it in text and jsonb)
# and lone UTF-16 surrogates (not encodable as UTF-8).
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json_text(value: str) -> Any:
    """JSON given as text inside a form field (the seed sends shapes this way); NaN and Infinity are
    refused as in JSON bodies. The ValidationError attaches to the field being validated, in a form or
    a serializer alike."""
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except RecursionError:
        raise ValidationError("The JSON is nested too deeply.") from None
    except ValueError as exc:
        raise ValidationError(f"Not valid JSON: {exc}") from None


def walk(value: Any) -> Iterator[tuple[int, Any]]:
    """Every node of a JSON value with its depth (the value itself is at depth 1; an object's keys are at
    the depth of their values). Iterative, so a value nested as deeply as a parser allows is no risk."""
    stack = [(1, value)]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        if isinstance(node, dict):
            for key, item in node.items():
                stack.append((depth + 1, key))
                stack.append((depth + 1, item))
        elif isinstance(node, list):
            stack.extend((depth + 1, item) for item in node)


def deeper_than(value: Any, limit: int) -> bool:
    return any(depth > limit for depth, _ in walk(value))


def has_non_finite_number(value: Any) -> bool:
    """JSON's grammar has no NaN or infinity, but a number such as 1e400 parses to one."""
    return any(isinstance(node, float) and not math.isfinite(node) for _, node in walk(value))


def has_unstorable_text(value: Any) -> bool:
    return any(isinstance(node, str) and UNSTORABLE_TEXT.search(node) for _, node in walk(value))


# --- JSON read back from the database --------------------------------------------------------------

# orjson reads an integer past 64 bits as a float: text with a run of 19 digits (in a number or a string,
# it cannot tell) is read by json as Django reads it.
_LONG_DIGITS = re.compile(r"\d{19}")


def json_converter(convert: Callable) -> Callable:
    """`convert` (a database converter of a query's column: value, expression, connection), or, when it is
    a JSONField's own from_db_value without a custom decoder, the same done by orjson, a fifth of the CPU
    of json.loads: a page of 50 versions parses 400 JSON values. Any text orjson refuses or might read
    otherwise (NaN, a lone surrogate, a long integer) is converted by Django's own code, as before."""
    if getattr(convert, "__func__", None) is not models.JSONField.from_db_value:
        return convert
    if convert.__self__.decoder is not None:  # type: ignore[attr-defined]
        return convert

    def from_db_value(value: Any, expression: Any, connection: Any) -> Any:
        if type(value) is not str or _LONG_DIGITS.search(value):
            return convert(value, expression, connection)
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return convert(value, expression, connection)

    return from_db_value
