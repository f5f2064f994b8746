"""registry_site/sqlite: Django's SQLite backend with each statement's placeholders rewritten once."""

from __future__ import annotations

import datetime

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


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 11, 29, 14, 23, 36, 979163),  # what the sqlite3 module makes of a column
        datetime.datetime(2026, 11, 29, 14, 23, 36, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "2026-11-29 14:23:36.979163",  # an annotation's text
        "2026-11-29 14:23:36,5",
        None,
    ],
)
@pytest.mark.parametrize("use_tz", [True, False])
def test_a_timestamp_reads_back_as_django_reads_it(settings, value, use_tz):
    settings.USE_TZ = use_tz
    ours = connection.ops.convert_datetimefield_value(value, None, connection)
    django = backend.operations.DatabaseOperations.convert_datetimefield_value(connection.ops, value, None, connection)
    assert ours == django and type(ours) is type(django)
    if ours is not None:
        assert (ours.tzinfo, ours.utcoffset()) == (django.tzinfo, django.utcoffset())


def test_a_column_s_timestamp_gets_its_zone_in_one_step(monkeypatch):
    monkeypatch.setattr(backend.operations.timezone, "make_aware", None)  # Django's path would fail
    read = connection.ops.convert_datetimefield_value(datetime.datetime(2026, 11, 29, 14, 23), None, connection)
    assert read == datetime.datetime(2026, 11, 29, 14, 23, tzinfo=datetime.timezone.utc)


def test_versions_read_their_timestamps_as_aware_datetimes(make_model, make_version):
    version = make_version(make_model("vision"), "1.0")
    read = type(version).objects.get(pk=version.pk)
    assert read.created_at == version.created_at and read.created_at.utcoffset() == datetime.timedelta(0)
