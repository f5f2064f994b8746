"""Django's SQLite backend (ENGINE "registry_site.sqlite"), with each statement's placeholders rewritten
once rather than at every run.

Django writes SQL with `%s` placeholders and its SQLite cursor turns them into SQLite's `?` with a
regular expression over the whole statement, every time it runs: for the 3 KB that reads a version, 35
microseconds, a tenth of `GET /models/{m}/versions/{v}` under gunicorn (issue #12). The statements the
API runs are few and repeat, so each one's rewritten text is kept, keyed by the statement; the cache is
emptied when it holds MAX_STATEMENTS, so statements that never repeat cannot make it grow."""

from __future__ import annotations

from django.db.backends.sqlite3 import base

MAX_STATEMENTS = 1024
_CONVERTED: dict[str, str] = {}


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query, *, param_names=None):
        if param_names is not None:  # named parameters: rewritten by Django, as they are rare
            return super().convert_query(query, param_names=param_names)
        converted = _CONVERTED.get(query)
        if converted is None:
            if len(_CONVERTED) >= MAX_STATEMENTS:
                _CONVERTED.clear()
            converted = _CONVERTED[query] = super().convert_query(query)
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        return self.connection.cursor(factory=SQLiteCursorWrapper)
