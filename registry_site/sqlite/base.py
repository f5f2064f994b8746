"""Django's SQLite backend (ENGINE "registry_site.sqlite"), with each statement's placeholders rewritten
once rather than at every run, and its timestamps read back in one step.

Django writes SQL with `%s` placeholders and its SQLite cursor turns them into SQLite's `?` with a
regular expression over the whole statement, every time it runs: for the 3 KB that reads a version, 35
microseconds, a tenth of `GET /models/{m}/versions/{v}` under gunicorn (issue #12). The statements the
API runs are few and repeat, so each one's rewritten text is kept, keyed by the statement; the cache is
emptied when it holds MAX_STATEMENTS, so statements that never repeat cannot make it grow.

Every timestamp read gets the connection's time zone through three of Django's functions (a page of 50
models reads 100 timestamps): DatabaseOperations below gives it in one step."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.backends.sqlite3 import base, operations

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


class DatabaseOperations(operations.DatabaseOperations):
    def convert_datetimefield_value(self, value, expression, connection):
        # What Django's does to the naive datetime the sqlite3 module makes of a datetime column (Django's
        # is_aware, make_aware and is_aware again), in one step; any other value is Django's to read.
        if type(value) is datetime.datetime and value.tzinfo is None and settings.USE_TZ:
            return value.replace(tzinfo=self.connection.timezone)
        return super().convert_datetimefield_value(value, expression, connection)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=SQLiteCursorWrapper)
