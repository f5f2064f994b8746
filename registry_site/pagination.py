"""Every list is a cursor page in a fixed order."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class RegistryCursorPagination(CursorPagination):
    """Cursor pages: stable under concurrent inserts and O(page) however long the list grows. The order
    comes from the view's `ordering`, which must end in a unique column."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        return view.ordering
