"""Read-only stand-ins for model instances, over one row of a compiled query (registry_site.prepared).

A page of 50 versions made 150 model instances (the version, its model, its file) only for the serializer
to read their attributes back: a third of the page's CPU (issue #12). A row view answers the same
attribute reads from the row itself: each column of the query is a property reading its place in the
row, a select_related relation is a view of the related model's columns in the same row (None when the
relation is empty), each annotation is read from its place, and the model's own properties (a version's
`checksum`, `file_path`...) are borrowed from its class, so they compute what they compute on an
instance. Nothing else: a deferred column, a relation not selected or a method of the model is an
AttributeError, so a view can only stand in where every read is known to be answered from the row.
`_columns` maps each attribute path (`("model", "name")`) to its place in the row, for serializers that
read it directly (registry_site.fields.RegistryModelSerializer). tests/test_row_views.py compares every
API answer made from views with the one made from instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.db.models import Model


class RowView:
    __slots__ = ("_row",)
    _columns: ClassVar[dict[tuple[str, ...], int]] = {}
    _model: ClassVar[type[Model]]

    def __init__(self, row: Sequence[Any]) -> None:
        self._row = row

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._row!r}>"


def _column(index: int) -> property:
    return property(lambda view: view._row[index])


def _related(view_class: type[RowView], key_index: int) -> property:
    return property(lambda view: None if view._row[key_index] is None else view_class(view._row))


def _own_properties(model: type[Model]) -> dict[str, property]:
    found: dict[str, property] = {}
    for klass in reversed(model.__mro__):
        if issubclass(klass, Model) and klass is not Model:
            found.update((name, value) for name, value in vars(klass).items() if isinstance(value, property))
    return found


def row_view_class(
    klass_info: Mapping[str, Any], select: Sequence[Any], annotations: Mapping[str, int]
) -> type[RowView]:
    """The view class of a compiled query's rows: `klass_info` and `select` as the SQL compiler made
    them, `annotations` its annotation_col_map."""
    view_class = _view_class(klass_info, select)
    namespace: dict[str, Any] = {"__slots__": ()}
    columns = dict(view_class._columns)
    for name, index in annotations.items():
        namespace[name] = _column(index)
        columns[(name,)] = index
    namespace["_columns"] = columns
    return type(view_class.__name__, (view_class,), namespace)


def _view_class(klass_info: Mapping[str, Any], select: Sequence[Any]) -> type[RowView]:
    model: type[Model] = klass_info["model"]
    namespace: dict[str, Any] = {"__slots__": (), "_model": model, **_own_properties(model)}
    columns: dict[tuple[str, ...], int] = {}
    for index in klass_info["select_fields"]:
        field = select[index][0].target
        namespace[field.attname] = _column(index)
        columns[(field.attname,)] = index
        if field.primary_key:
            namespace["pk"] = _column(index)
            columns[("pk",)] = index
    for related in klass_info.get("related_klass_infos", ()):
        field = related["field"]
        if related["reverse"]:
            continue  # a reverse one-to-one: not needed, so not read
        related_class = _view_class(related, select)
        key_index = related_class._columns[("pk",)]
        namespace[field.name] = _related(related_class, key_index)
        columns.update(((field.name, *path), index) for path, index in related_class._columns.items())
    namespace["_columns"] = columns
    return type(f"{model.__name__}Row", (RowView,), namespace)
