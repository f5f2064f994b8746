"""Every list is a cursor page in a fixed order."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.utils.urls import replace_query_param


@dataclass(frozen=True)
class KeysetSegment:
    """Rows of one kind in one order: `fields` (columns or annotations of `queryset`, the last one unique),
    all ascending or all descending, so that one index can serve them in either direction."""

    queryset: QuerySet
    fields: tuple[str, ...]
    descending: bool

    def ordered(self, *, reverse: bool = False) -> QuerySet:
        descending = self.descending != reverse
        return self.queryset.order_by(*(f"-{name}" if descending else name for name in self.fields))

    def beyond(self, values: list[Any], *, reverse: bool = False) -> Q:
        """The rows after `values` in this order (before them with `reverse`). The leading `<=` is what
        an index can seek to; the rest settles the ties."""
        op = "lt" if self.descending != reverse else "gt"
        strictly = Q()
        for i, name in enumerate(self.fields):
            strictly |= Q(**dict(zip(self.fields[:i], values[:i], strict=True)), **{f"{name}__{op}": values[i]})
        return Q(**{f"{self.fields[0]}__{op}e": values[0]}) & strictly


@dataclass(frozen=True)
class KeysetOrder:
    """An order a client chose (`?ordering=`): its segments come one after the other (for instance the
    versions that have a metric, by its value, then those that lack it). `name` ties a cursor to it."""

    name: str
    segments: list[KeysetSegment]


class RegistryCursorPagination(CursorPagination):
    """Cursor pages: stable under concurrent inserts and O(page) however long the list grows. The order
    comes from the view's `ordering`, which must end in a unique column; or, when the view offers a
    `keyset_order(request, queryset)` and the client chose one, from that (keyset pagination over its
    segments, every page a few index seeks)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    keyset: KeysetOrder | None = None

    def get_ordering(self, request, queryset, view):
        return view.ordering

    def get_page_size(self, request):
        """`page_size`: a whole number from 1; above max_page_size it is max_page_size (documented). Junk
        is a 400, where DRF would silently use the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        digits = raw.lstrip("0")
        if not (raw.isascii() and raw.isdigit()) or not digits:
            raise exceptions.ValidationError({self.page_size_query_param: ["Must be a whole number from 1."]})
        # int() of a huge string is slow, and refused past 4300 digits: anything this long is over the cap.
        return self.max_page_size if len(digits) > 6 else min(int(digits), self.max_page_size)

    # --- Keyset pages ------------------------------------------------------------------------------
    def paginate_queryset(self, queryset, request, view=None):
        chooser = getattr(view, "keyset_order", None)
        self.keyset = chooser(request, queryset) if chooser is not None else None
        if self.keyset is None:
            try:
                return super().paginate_queryset(queryset, request, view)
            except (ValueError, TypeError, ValidationError):
                # A forged cursor whose position does not fit the column ("p=abc" for an id): a 404 as any
                # other invalid cursor, not a 500 from the query.
                if request.query_params.get(self.cursor_query_param):
                    raise exceptions.NotFound(self.invalid_cursor_message) from None
                raise
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        start = self._decode_position(request)
        reverse = bool(start and start[2])
        rows = self._read(start, reverse=reverse)
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if reverse:
            rows.reverse()
        first = rows[0][0] if rows else None
        last = rows[-1][0] if rows else None
        here = (start[0], start[1]) if start else None
        if reverse:
            self._previous = (first, True) if more and first else None
            self._next = (last or here, False)
        else:
            self._next = (last, False) if more and last else None
            self._previous = (first or here, True) if start else None
        return [row for _, row in rows]

    def _read(self, start, *, reverse: bool) -> list[tuple[tuple[int, list], Model]]:
        assert self.keyset is not None
        segments = self.keyset.segments
        wanted = self.page_size + 1
        rows: list[tuple[tuple[int, list], Model]] = []
        if start is None:
            first, indices = 0, range(len(segments))
        else:
            first = start[0]
            indices = range(first, -1, -1) if reverse else range(first, len(segments))
        for index in indices:
            segment = segments[index]
            queryset = segment.ordered(reverse=reverse)
            if start is not None and index == first:
                try:  # a forged cursor's values may not fit the columns: "abc" for a number
                    queryset = queryset.filter(segment.beyond(start[1], reverse=reverse))
                except (ValueError, TypeError, ValidationError):
                    raise exceptions.NotFound(self.invalid_cursor_message) from None
            for row in queryset[: wanted - len(rows)]:
                rows.append(((index, [getattr(row, name) for name in segment.fields]), row))
            if len(rows) >= wanted:
                break
        return rows

    def _decode_position(self, request) -> tuple[int, list, bool] | None:
        assert self.keyset is not None
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None
        try:
            cursor = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
            segment, values, reverse = cursor["s"], cursor["k"], cursor["r"]
            if cursor["o"] != self.keyset.name or not 0 <= segment < len(self.keyset.segments):
                raise ValueError("another order's cursor")
            if not isinstance(values, list) or len(values) != len(self.keyset.segments[segment].fields):
                raise ValueError("not a position")
            return segment, [_decode_value(value) for value in values], bool(reverse)
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
            raise exceptions.NotFound(self.invalid_cursor_message) from None

    def _link(self, position) -> str | None:
        if position is None or position[0] is None:
            return None
        assert self.keyset is not None and self.base_url is not None
        (segment, values), reverse = position
        cursor = {"o": self.keyset.name, "s": segment, "k": [_encode_value(v) for v in values], "r": int(reverse)}
        encoded = base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)

    def get_next_link(self):
        return super().get_next_link() if self.keyset is None else self._link(self._next)

    def get_previous_link(self):
        return super().get_previous_link() if self.keyset is None else self._link(self._previous)


def _encode_value(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a position")
    return value
