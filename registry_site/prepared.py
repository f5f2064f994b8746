"""Hot reads whose SQL is compiled once per thread and database, then run with each request's values.

Compiling a queryset with a subquery or two, select_related and annotations costs the API more CPU than
the database takes to run it (issue #12: about half of `GET /models/{m}/versions/{v}`). A PreparedQuery
builds its queryset once with placeholder values, lets Django compile it, remembers where the
placeholders landed among the SQL's parameters, and from then on only swaps the values in. The rows
become model instances exactly as Django's own ModelIterable makes them (from_db, select_related
populators, annotations), with the compiler's own converters. tests/test_prepared_queries.py checks
that every prepared query gives what its queryset gives, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql import InsertQuery

from registry_site.json_values import json_converter
from registry_site.row_views import RowView, row_view_class

M = TypeVar("M", bound=Model)


class _Compiled:
    __slots__ = (
        "compiler",
        "sql",
        "params",
        "slots",
        "init_list",
        "start",
        "end",
        "populators",
        "annotations",
        "converters",
        "_view_class",
        "_view_converters",
    )

    def __init__(self, queryset: QuerySet, placeholders: dict[str, Any]) -> None:
        compiler = queryset.query.get_compiler(using=queryset.db)
        self.compiler = compiler
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.slots: list[tuple[int, str]] = []
        for name, marker in placeholders.items():
            positions = [i for i, value in enumerate(self.params) if type(value) is type(marker) and value == marker]
            if not positions:
                raise ValueError(f"The prepared query's value '{name}' does not reach its SQL's parameters.")
            self.slots.extend((i, name) for i in positions)
        if compiler.connection.vendor == "sqlite":
            self.sql, self.params, self.slots = _inline_constants(self.sql, self.params, self.slots)
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        # django-stubs describe Django 6, whose populators also take a fetch mode; 5.2 takes these three.
        self.populators = get_related_populators(klass_info, select, queryset.db)  # type: ignore[call-arg]
        self.annotations = tuple(compiler.annotation_col_map.items())
        # What results_iter would work out again for every run (a tenth of a registration's CPU did).
        selected = [column[0] for column in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(selected):
            raise ValueError("A prepared query cannot select a composite field.")
        self.converters = compiler.get_converters(selected)
        self._view_class: type[RowView] | None = None
        self._view_converters: dict[int, tuple[list[Callable], Any]] | None = None

    @property
    def view_class(self) -> type[RowView]:
        if self._view_class is None:
            compiler = self.compiler
            self._view_class = row_view_class(compiler.klass_info, compiler.select, compiler.annotation_col_map)
        return self._view_class

    def view_rows(self, rows: list[tuple]) -> list[list]:
        """The compiler's own apply_converters over `rows`, with a JSON column's text parsed by orjson
        (registry_site.json_values.json_converter)."""
        if self._view_converters is None:
            self._view_converters = {
                position: ([json_converter(convert) for convert in converters], expression)
                for position, (converters, expression) in self.converters.items()
            }
        return list(self.compiler.apply_converters(rows, self._view_converters))


_PLACEHOLDER = re.compile(r"%%|%s")


def _literal(value: Any) -> str | None:
    """`value` as an SQLite literal, for the types whose text is exact; None for the others (a float)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):  # an enum's member too: its text is its value
        return "'" + str.__str__(value).replace("'", "''") + "'"
    return None


def _inline_constants(sql: str, params: list, slots: list[tuple[int, str]]) -> tuple[str, list, list]:
    """The SQL with every parameter that is not a placeholder's written in as a literal. A value bound to a
    column that a partial index's WHERE names (`deployment_status = 'active'`, `is_default`) makes SQLite
    prepare the whole statement again at every run, in case the value lets it use that index: for the
    version read, 0.1 ms of CPU out of 0.12 (issue #12). Written in, the statement stays prepared in the
    connection's cache. A literal's `%` is doubled, as Django's SQLite cursor turns `%%` back into `%`."""
    variable = {position for position, _ in slots}
    kept: list = []
    moved: dict[int, int] = {}
    index = -1

    def replace(match: re.Match) -> str:
        nonlocal index
        if match.group() == "%%":
            return "%%"
        index += 1
        literal = None if index in variable else _literal(params[index])
        if literal is None:
            moved[index] = len(kept)
            kept.append(params[index])
            return "%s"
        return literal.replace("%", "%%")

    inlined = _PLACEHOLDER.sub(replace, sql)
    if index + 1 != len(params):  # placeholders not where the parameters say: leave the SQL as Django made it
        return sql, params, slots
    return inlined, kept, [(moved[position], name) for position, name in slots]


class PreparedQuery(Generic[M]):
    """`build(**placeholders)` returns the queryset; call `.all(**values)` or `.first(**values)` with the
    same keyword names. Only values that the ORM passes as SQL parameters can be placeholders (filter
    values, not field names or slices)."""

    def __init__(self, build: Callable[..., QuerySet[M]], *names: str, markers: dict[str, Any] | None = None) -> None:
        self._build = build
        self._names = names
        # A value stands for each name while the SQL is compiled: a string no one sends, or, for a name
        # whose field is not text (an integer key), the marker given here.
        self._markers = {name: (markers or {}).get(name, f"\x00prepared:{name}\x00") for name in names}
        self._local = threading.local()

    def _compiled(self, alias: str) -> _Compiled:
        cache: dict[tuple[str, str], _Compiled] = self._local.__dict__.setdefault("cache", {})
        key = (alias, connections[alias].vendor)
        compiled = cache.get(key)
        if compiled is None:
            compiled = cache[key] = _Compiled(self._build(**self._markers).using(alias), self._markers)
        return compiled

    def _run(self, using: str, values: dict[str, Any]) -> tuple[_Compiled, list]:
        compiled = self._compiled(using)
        params = list(compiled.params)
        for position, name in compiled.slots:
            params[position] = values[name]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled, rows

    def views(self, *, using: str = "default", **values: Any) -> list[RowView]:
        """The rows as read-only stand-ins for the instances `all` would make (registry_site.row_views):
        for answers that only show what was read, at a fraction of the CPU of making model instances."""
        compiled, rows = self._run(using, values)
        view = compiled.view_class
        return [view(row) for row in compiled.view_rows(rows)]

    def all(self, *, using: str = "default", **values: Any) -> list[M]:
        compiled, rows = self._run(using, values)
        model = compiled.compiler.klass_info["model"]
        found = []
        if compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        for row in rows:
            obj = model.from_db(using, compiled.init_list, row[compiled.start : compiled.end])
            for populator in compiled.populators:
                populator.populate(row, obj)
            for attribute, column in compiled.annotations:
                setattr(obj, attribute, row[column])
            found.append(obj)
        return found

    def first(self, *, using: str = "default", **values: Any) -> M | None:
        found = self.all(using=using, **values)
        return found[0] if found else None

    def first_view(self, *, using: str = "default", **values: Any) -> RowView | None:
        found = self.views(using=using, **values)
        return found[0] if found else None


# An integer no cursor holds, standing for a page's position while its SQL is compiled.
_POSITION_MARKER = -7_340_032_113_900_419
# An integer no row's id is, standing for an id while a PreparedQuery's SQL is compiled (`markers`).
ID_MARKER = -7_340_032_113_900_421


class PreparedPages:
    """Cursor pages of `build(**values)` in the order of one integer column (or, with `text_position`, one
    text column), each page shape (order, position or none, offset, size) compiled once: `pages(**values)`
    stands for the queryset in DRF's CursorPagination.paginate_queryset, which orders it, filters it past
    the cursor's position and slices it, and nothing else. Compiling a page's query cost a page of
    versions as much CPU as reading its 50 rows into model instances. Past `max_shapes` shapes (a client
    trying every page size), or with a position that is not a whole number (not text), a page is read by
    its queryset as before.
    With `views`, a prepared page is a list of row views (PreparedQuery.views), for an answer that only
    shows the page."""

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *names: str,
        max_shapes: int = 64,
        views: bool = False,
        text_position: bool = False,
    ) -> None:
        self._build = build
        self._names = names
        self._max_shapes = max_shapes
        self._views = views  # pages of row views (PreparedQuery.views) rather than model instances
        self._text_position = text_position  # the order's column is text (a name), not an integer
        self._shapes: dict[tuple, PreparedQuery] = {}
        self._lock = threading.Lock()

    def pages(self, **values: Any) -> _PageOf:
        return _PageOf(self, values, (), None)

    def _read(self, page: _PageOf, start: int, stop: int) -> list:
        ordering, bound = page.ordering, page.bound
        lookup, position = bound if bound is not None else (None, None)
        values = dict(page.values)
        if lookup is not None:
            values["position"] = self._position(position)
            if values["position"] is None:
                return list(page.queryset()[start:stop])  # refused or answered as the ORM does
        key = (ordering, lookup, start, stop)
        prepared = self._shapes.get(key)
        if prepared is None:
            with self._lock:
                if len(self._shapes) >= self._max_shapes:
                    return list(page.queryset()[start:stop])
                prepared = self._shapes.setdefault(key, self._prepare(ordering, lookup, start, stop))
        return prepared.views(**values) if self._views else prepared.all(**values)

    def _position(self, position: Any) -> int | str | None:
        """The cursor's position as the prepared query takes it; None for one it leaves to the ORM."""
        if self._text_position:
            return position if isinstance(position, str) else None
        try:
            number = int(position)
        except (TypeError, ValueError):
            return None
        return number if -(2**63) <= number < 2**63 else None

    def _prepare(self, ordering: tuple[str, ...], lookup: str | None, start: int, stop: int) -> PreparedQuery:
        def build(**values: Any) -> QuerySet:
            position = values.pop("position", None)
            queryset = self._build(**values).order_by(*ordering)
            if lookup is not None:
                queryset = queryset.filter(**{lookup: position})
            return queryset[start:stop]

        names = (*self._names, "position") if lookup is not None else self._names
        # A text position stands as PreparedQuery's own marker (a string no one sends).
        return PreparedQuery(build, *names, markers={} if self._text_position else {"position": _POSITION_MARKER})


class _PageOf:
    """What DRF's cursor pagination does to a queryset (order_by, one filter on the position, a slice),
    recorded, then read through PreparedPages."""

    def __init__(self, pages: PreparedPages, values: dict, ordering: tuple, bound: tuple | None) -> None:
        self.pages, self.values, self.ordering, self.bound = pages, values, ordering, bound

    def order_by(self, *ordering: str) -> _PageOf:
        return _PageOf(self.pages, self.values, ordering, self.bound)

    def filter(self, **lookup: Any) -> _PageOf:
        ((name, value),) = lookup.items()
        return _PageOf(self.pages, self.values, self.ordering, (name, value))

    def __getitem__(self, window: slice) -> list:
        return self.pages._read(self, window.start or 0, window.stop)

    def queryset(self) -> QuerySet:
        """The same page as a plain queryset."""
        queryset = self.pages._build(**self.values).order_by(*self.ordering)
        return queryset.filter(**dict([self.bound])) if self.bound is not None else queryset


class _Insert:
    """One INSERT of one row (its model, columns and returned columns), compiled by Django once."""

    __slots__ = ("sql", "compiler", "returning_params", "converters")

    def __init__(self, model: type[Model], using: str, fields: list, returning_fields: list | None) -> None:
        # as_sql() over a blank row, its attributes read as they are (raw, without pre_save): the SQL Django
        # makes for any row whose values are not expressions.
        query = InsertQuery(model)
        query.insert_values(fields, [model()], raw=True)
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = returning_fields
        ((self.sql, _),) = compiler.as_sql()
        self.compiler = compiler
        self.returning_params = compiler.returning_params
        table = model._meta.db_table
        self.converters = compiler.get_converters([f.get_col(table) for f in returning_fields or ()])


class PreparedInsertModel(Model):
    """A model whose rows are inserted with SQL compiled once per thread, database and set of columns:
    Model.save() made Django build the INSERT (a query, its compiler, every column's quoted name) anew
    for each row, about as much CPU as a registration's three inserts took to run (issue #12). Each
    value is still prepared by its field (pre_save, get_db_prep_save) as Django does; a value that is an
    expression (F(), Now()...), a raw save, or a database that cannot return the new row's columns from
    its INSERT goes through Django's own path. tests/test_prepared_queries.py compares both."""

    class Meta:
        abstract = True

    def _do_insert(self, manager, using, fields, returning_fields, raw):
        connection = connections[using]
        if raw or not fields or not connection.features.can_return_columns_from_insert:
            return super()._do_insert(manager, using, fields, returning_fields, raw)
        cache = _INSERTS.__dict__.setdefault("cache", {})
        key = (type(self), using, connection.vendor, tuple(fields), tuple(returning_fields or ()))
        insert = cache.get(key, _UNCOMPILED)
        if insert is _UNCOMPILED:
            # A field that makes its own placeholder from the value (a geometry) has no SQL to keep.
            compilable = not any(getattr(field, "get_placeholder", None) for field in fields)
            insert = cache[key] = _Insert(type(self), using, fields, returning_fields) if compilable else None
        if insert is None:
            return super()._do_insert(manager, using, fields, returning_fields, raw)
        compiler = insert.compiler
        params = [compiler.prepare_value(field, field.pre_save(self, add=True)) for field in fields]
        if any(hasattr(value, "as_sql") for value in params):
            return super()._do_insert(manager, using, fields, returning_fields, raw)
        with connection.cursor() as cursor:
            cursor.execute(insert.sql, params)
            if not returning_fields:
                return []
            rows = [connection.ops.fetch_returned_insert_columns(cursor, insert.returning_params)]
        if insert.converters:
            rows = list(compiler.apply_converters(rows, insert.converters))
        return rows


_INSERTS = threading.local()
_UNCOMPILED = object()
