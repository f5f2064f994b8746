"""Every list is a cursor page in a fixed order."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class RegistryCursorPagination(CursorPagination):
    """Cursor pages: stable under concurrent inserts and O(page) however long the list grows. The order
    comes from the view's `ordering`, which must end in a unique column."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

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
