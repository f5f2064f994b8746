"""The hot reads' query plans (issue #12, W3: flat to a million versions): every query of get-model,
get-version, get-default, the first page of a model's versions and the first page of models finds its rows
through an index, never by reading a whole table, so its cost does not grow with the number of versions or
models. SQLite: no `SCAN` of a table other than in an index's order (EXPLAIN QUERY PLAN); PostgreSQL, with
sequential scans priced out (enable_seqscan off, so a table without a usable index still shows one): no
`Seq Scan`. bench/million_versions.py measures the same requests at 1,000,000 versions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import deployed

pytestmark = pytest.mark.django_db

PATHS = {
    "get_model": "/models/planned",
    "get_version": "/models/planned/versions/1.0.5",
    "get_deployed_version": "/models/planned/versions/1.0.3",
    "get_default": "/models/planned/versions/default",
    "list_versions": "/models/planned/versions",
    "list_models": "/models",
}


@pytest.fixture
def model(api, make_model, make_version):
    model = make_model("planned")
    for i in range(12):
        make_version(model, f"1.0.{i}")  # the first one becomes the default
    deployed(api, model, "1.0.3", "production")
    for i in range(3):
        make_model(f"other-{i}")
    return model


# The default is found through the partial unique index on (model) WHERE is_default, not by reading the
# model's versions through the plain model index and filtering them.
DEFAULT_INDEX = "model_versions_one_default"


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql)
        return "\n".join(str(row[-1] if connection.vendor == "sqlite" else row[0]) for row in cursor.fetchall())


def _whole_table_reads(sql: str, *, paged: bool) -> list[str]:
    """The plan's steps that read a whole table, or (for a page) sort every matching row before the LIMIT."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            steps = [row[-1] for row in cursor.fetchall()]
            return [
                s
                for s in steps
                if (s.startswith("SCAN ") and "INDEX" not in s and s != "SCAN CONSTANT ROW")
                or (paged and s.startswith("USE TEMP B-TREE"))
            ]
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        steps = [row[0].strip() for row in cursor.fetchall()]
        # A page's top-level Sort (the first node under the Limit) would sort all the model's versions.
        return [s for s in steps if "Seq Scan" in s] + [s for s in steps[:2] if paged and "Sort" in s]


@pytest.mark.parametrize("name", sorted(PATHS))
def test_hot_reads_use_indexes(api, model, name):
    with CaptureQueriesContext(connection) as captured:
        response = api.get(PATHS[name])
    assert response.status_code == 200, response.content
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    selects = [sql for sql in selects if '"model_versions"' in sql or '"models"' in sql]
    assert selects, captured.captured_queries
    for sql in selects:
        # The captured SQL has its parameters inlined by the backend's last_executed_query: run it as is.
        assert _whole_table_reads(sql, paged=name.startswith("list_")) == [], sql
        # On SQLite only: PostgreSQL's choice between the two indexes is by cost, and on a dozen rows it
        # may rightly take the plain one.
        if (
            connection.vendor == "sqlite" and '"is_default" AND ' in sql
        ):  # looks the default up (rather than selecting the column)
            assert DEFAULT_INDEX in _plan(sql), sql


def _grow(model, *, versions: int, models: int, per_model: int) -> None:
    """A grown registry: `model` gets `versions` versions and `models` other models `per_model` each (bulk
    copies of one of its rows, as bench/million_versions.py makes them), committed and ANALYZEd as autovacuum
    would. (Statistics gathered inside a test's transaction, then rolled back with it, made the planner's
    choice depend on which tests had run before in the same database.)"""
    from models_app.models import ModelVersion, RegisteredModel

    quote = connection.ops.quote_name
    columns = [quote(f.column) for f in ModelVersion._meta.concrete_fields if not f.primary_key]

    def copied(model_expr: str, version_expr: str) -> str:
        chosen = {quote("model_id"): model_expr, quote("version"): version_expr, quote("is_default"): "FALSE"}
        return ", ".join(chosen.get(column, f"t.{column}") for column in columns)

    template = ModelVersion.objects.filter(model=model).order_by("id").values_list("id", flat=True)[1]
    mcolumns = [quote(f.column) for f in RegisteredModel._meta.concrete_fields if not f.primary_key]
    big_version, many_version = "'g' || s.n::text", "'v' || s.n::text"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO model_versions ({', '.join(columns)}) SELECT {copied(str(model.pk), big_version)} "
            f"FROM generate_series(1, {versions}) AS s(n), model_versions t WHERE t.id = %s",
            [template],
        )
        names = {quote("name"): "'grown-' || s.n::text"}
        cursor.execute(
            f"INSERT INTO models ({', '.join(mcolumns)}) SELECT {', '.join(names.get(c, f't.{c}') for c in mcolumns)} "
            f"FROM generate_series(1, {models}) AS s(n), models t WHERE t.id = %s",
            [model.pk],
        )
        cursor.execute(
            f"INSERT INTO model_versions ({', '.join(columns)}) SELECT {copied('m.id', many_version)} "
            f"FROM models m, generate_series(1, {per_model}) AS s(n), model_versions t "
            f"WHERE m.name LIKE 'grown-%%' AND t.id = %s ORDER BY m.id, s.n",
            [template],
        )
        # Every model with a file has a default, as in a registry (and in bench/million_versions.py): the
        # first of the grown ones; the planned model's stays its oldest version, the worst case for a plan
        # that looks for the default among the model's versions newest first.
        cursor.execute(
            "UPDATE model_versions SET is_default = TRUE WHERE version = 'v1' AND model_id IN "
            "(SELECT id FROM models WHERE name LIKE 'grown-%%')"
        )
        cursor.execute("ANALYZE models")
        cursor.execute("ANALYZE model_versions")


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)  # the rows and their statistics committed, then flushed
@pytest.mark.parametrize("name", sorted(PATHS))
def test_hot_reads_keep_their_plans_as_the_registry_grows(api, model, name):
    """With the statistics of a registry that grew (one model of 20,000 versions among 200 of 100), the
    planner, left to its own costs, still reads a model's versions in a page's order through an index,
    never sorts them all for a page, and finds the default through its partial unique index. It did not:
    with an index on the model alone it chose that one and sorted the 20,000 versions for every page
    (105 ms instead of 9), and a migration that dropped that index dropped the default's index too."""
    _grow(model, versions=20_000, models=200, per_model=100)
    with CaptureQueriesContext(connection) as captured:
        response = api.get(PATHS[name])
    assert response.status_code == 200, response.content
    selects = [q["sql"] for q in captured.captured_queries if '"model_versions"' in q["sql"]]
    selects = [sql for sql in selects if sql.lstrip().upper().startswith("SELECT")]
    assert selects or name == "get_model", captured.captured_queries
    for sql in selects:
        plan = _plan(sql)
        assert "Seq Scan on model_versions" not in plan, plan
        if name.startswith("list_"):  # (a single version's read may sort its one row)
            assert "Sort Key: model_versions." not in plan, plan  # all of a model's versions, sorted
        if '"is_default" AND ' in sql or '"is_default")' in sql:
            assert DEFAULT_INDEX in plan, plan
