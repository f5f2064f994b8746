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

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


class _Compiled:
    __slots__ = ("compiler", "sql", "params", "slots", "init_list", "start", "end", "populators", "annotations")

    def __init__(self, queryset: QuerySet, placeholders: dict[str, str]) -> None:
        compiler = queryset.query.get_compiler(using=queryset.db)
        self.compiler = compiler
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.slots: list[tuple[int, str]] = []
        for name, marker in placeholders.items():
            positions = [i for i, value in enumerate(self.params) if value == marker]
            if not positions:
                raise ValueError(f"The prepared query's value '{name}' does not reach its SQL's parameters.")
            self.slots.extend((i, name) for i in positions)
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        # django-stubs describe Django 6, whose populators also take a fetch mode; 5.2 takes these three.
        self.populators = get_related_populators(klass_info, select, queryset.db)  # type: ignore[call-arg]
        self.annotations = tuple(compiler.annotation_col_map.items())


class PreparedQuery(Generic[M]):
    """`build(**placeholders)` returns the queryset; call `.all(**values)` or `.first(**values)` with the
    same keyword names. Only values that the ORM passes as SQL parameters can be placeholders (filter
    values, not field names or slices)."""

    def __init__(self, build: Callable[..., QuerySet[M]], *names: str) -> None:
        self._build = build
        self._names = names
        self._local = threading.local()

    def _compiled(self, alias: str) -> _Compiled:
        cache: dict[tuple[str, str], _Compiled] = self._local.__dict__.setdefault("cache", {})
        key = (alias, connections[alias].vendor)
        compiled = cache.get(key)
        if compiled is None:
            placeholders = {name: f"\x00prepared:{name}\x00" for name in self._names}
            compiled = cache[key] = _Compiled(self._build(**placeholders).using(alias), placeholders)
        return compiled

    def all(self, *, using: str = "default", **values: Any) -> list[M]:
        compiled = self._compiled(using)
        params = list(compiled.params)
        for position, name in compiled.slots:
            params[position] = values[name]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        model = compiled.compiler.klass_info["model"]
        found = []
        for row in compiled.compiler.results_iter([rows]):
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
