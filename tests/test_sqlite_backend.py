"""registry_site/sqlite: Django's SQLite backend with each statement's placeholders rewritten once."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from registry_site.sqlite import base as backend

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend's own cursor"),
]


def test_the_registry_runs_on_this_backend():
    assert isinstance(connections["default"], backend.DatabaseWrapper)
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, backend.SQLiteCursorWrapper)


def test_a_statement_is_rewritten_once_and_means_what_django_makes_of_it():
    sql = "SELECT %s, '100%% sure', %s || '%%s'"
    backend._CONVERTED.pop(sql, None)
    for value in ("a", "b"):  # the second run reads the rewritten text kept by the first
        with connection.cursor() as cursor:
            cursor.execute(sql, [value, "x"])
            assert cursor.fetchone() == (value, "100% sure", "x%s")
    assert backend._CONVERTED[sql] == "SELECT ?, '100% sure', ? || '%s'"
    with connection.cursor() as cursor:  # named parameters: Django's own rewriting, nothing kept
        cursor.execute("SELECT %(first)s", {"first": 7})
        assert cursor.fetchone() == (7,)
    assert "SELECT %(first)s" not in backend._CONVERTED


def test_statements_that_never_repeat_cannot_grow_the_cache(monkeypatch):
    monkeypatch.setattr(backend, "MAX_STATEMENTS", 5)
    with connection.cursor() as cursor:
        for i in range(12):
            cursor.execute(f"SELECT %s + {i}", [1])
            assert cursor.fetchone() == (1 + i,)
            assert len(backend._CONVERTED) <= 5
