"""registry_site.prepared: a query compiled once and run with other values gives exactly what its
queryset gives (every field, the select_related model and file, the annotations), on SQLite and
PostgreSQL; and the API's hot reads use it."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Model
from django.db.models.functions import Now
from django.forms.models import model_to_dict

from models_app import selectors
from models_app.models import Artifact, ModelVersion, RegisteredModel
from models_app.serializers import ModelVersionSerializer, RegisteredModelListSerializer
from registry_site import prepared as prepared_module
from registry_site.models import AuditEvent
from registry_site.prepared import PreparedInsertModel, PreparedQuery
from registry_site.row_views import RowView
from tests.conftest import deployed, upload

pytestmark = pytest.mark.django_db


def _shown(version: ModelVersion | RowView) -> dict:
    """A version as the API shows it, with the columns it was read with (a row view has no others)."""
    return {
        **ModelVersionSerializer().to_representation(version),
        "pk": version.pk,
        "model_id": version.model_id,
        "artifact": (version.artifact.sha256, version.artifact.size) if version.artifact_id else None,
    }


def _seen(version: ModelVersion | None) -> dict | None:
    if version is None:
        return None
    return {
        "row": model_to_dict(version),
        "created_at": version.created_at,
        "model": model_to_dict(version.model),
        "artifact": model_to_dict(version.artifact) if version.artifact_id else None,
        "active_targets": sorted(version.active_targets or ()),
        "metric_map": version.metric_map,
        "tag_map": version.tag_map,
    }


@pytest.fixture
def registry(api, make_model, make_version):
    vision = make_model("vision")
    make_version(vision, "1.0", metrics='{"auc": 0.91, "loss": 0.125}', tags='{"team": "cv"}', accuracy="0.5")
    make_version(vision, "2.0", data=None)
    make_version(vision, "3.0", data=b"other", tags='{"team": "cv", "stage": "rc"}')
    deployed(api, vision, "1.0", "production")
    deployed(api, vision, "1.0", "staging")
    other = make_model("other")
    make_version(other, "1.0", data=b"weights")  # same label, another model
    return vision


@pytest.mark.parametrize(
    ("model", "label"),
    [("vision", "1.0"), ("vision", "2.0"), ("vision", "3.0"), ("other", "1.0"), ("vision", "9.9"), ("nope", "1.0")],
)
def test_a_version_read_prepared_is_the_version_its_queryset_reads(registry, model, label):
    expected = selectors.versions_of(model).filter(version=label).first()
    for _ in range(2):  # compiled on the first call, reused on the second
        assert _seen(selectors.version_by_names(model, label)) == _seen(expected)
    if (model, label) == ("vision", "1.0"):
        assert sorted(expected.active_targets) == ["production", "staging"] and expected.metric_map


@pytest.mark.parametrize("model", ["vision", "other", "nope"])
def test_the_default_read_prepared_is_the_default(registry, model):
    expected = selectors.versions_of(model).filter(is_default=True).first()
    assert _seen(selectors.default_version_of(model)) == _seen(expected)
    assert (expected is None) == (model == "nope")


def test_values_are_parameters_never_sql(registry):
    assert selectors.version_by_names("vision", "1.0' OR '1'='1") is None
    assert selectors.version_by_names("vision%", "1.0") is None


@pytest.mark.parametrize("text", ["it's 100% %s done", "%%", "'; DROP TABLE models; --", "ünïcode"])
def test_the_constants_of_a_query_read_the_rows_they_name(db, text):
    """On SQLite the values that are not placeholders are written into the SQL (prepared._inline_constants):
    a quote, a percent sign and Django's own %s still mean exactly themselves (an enum member, `active`,
    and a format with %: the version reads above). On PostgreSQL they stay parameters."""
    RegisteredModel.objects.create(name="kept", model_type="other", description=text, is_active=True)
    RegisteredModel.objects.create(name="other", model_type="other", description=text + "x", is_active=True)
    RegisteredModel.objects.create(name="off", model_type="other", description=text, is_active=False)
    query = PreparedQuery(
        lambda name: RegisteredModel.objects.filter(name=name, description=text, is_active=True),
        "name",
    )
    for _ in range(2):
        assert [m.name for m in query.all(name="kept")] == ["kept"]
        assert query.all(name="other") == [] and query.all(name="off") == []
    compiled = query._compiled("default")
    if connection.vendor == "sqlite":
        assert len(compiled.params) == 1 and "'" in compiled.sql  # the name alone is bound
    else:
        assert len(compiled.params) == 2  # the description and the name


def test_a_placeholder_that_does_not_reach_the_sql_is_refused(db):
    query = PreparedQuery(lambda name: ModelVersion.objects.all(), "name")
    with pytest.raises(ValueError, match="'name' does not reach"):
        query.all(name="x")


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """The values of each read through PreparedQuery.views, in order."""
    seen: list[dict] = []
    real = PreparedQuery.views

    def counting(self, *, using="default", **values):
        seen.append(values)
        return real(self, using=using, **values)

    monkeypatch.setattr(PreparedQuery, "views", counting)
    return seen


def test_the_version_routes_read_through_the_prepared_queries(api, registry, calls):
    """A version and the default only shown are read as row views (tests/test_row_views.py)."""
    body = api.get("/models/vision/versions/1.0").json()
    assert body["deployed_to"] == ["production", "staging"] and body["metrics"]["auc"] == 0.91
    assert api.get("/models/vision/versions/default").json()["version"] == "1.0"
    assert calls == [{"model": "vision", "version": "1.0"}, {"model": "vision"}]


def test_a_page_read_prepared_is_the_page_its_queryset_reads(registry):
    """selectors.version_pages stands for the queryset in DRF's cursor pagination: each shape (order,
    position or none, offset, size) compiled once, then run with other models and positions."""
    for model in ("vision", "other", "nope"):
        ids = list(selectors.versions_listed(model).order_by("-id").values_list("id", flat=True))
        for ordering, lookup in [(("-id",), None), (("-id",), "id__lt"), (("id",), "id__gt")]:
            for position in [*ids, 0, 10**9]:
                page = selectors.version_pages(model).order_by(*ordering)
                expected = selectors.versions_listed(model).order_by(*ordering)
                if lookup:
                    page = page.filter(**{lookup: str(position)})
                    expected = expected.filter(**{lookup: position})
                _assert_same_slices(page, expected, _shown, unread=lambda version: version.model.readme)


def _assert_same_slices(page, expected, shown, *, unread) -> None:
    """Each slice DRF's pagination takes of a prepared page holds row views that show what the same slice
    of its queryset shows, and that never read what `unread` reads (the model card, which lists leave out)."""
    for start, stop in [(0, 2), (0, 51), (1, 3)]:
        got = page[start:stop]
        assert all(isinstance(row, RowView) for row in got)
        assert [shown(row) for row in got] == [shown(row) for row in expected[start:stop]]
        for row in got:
            with pytest.raises(AttributeError):
                unread(row)


def test_a_page_past_an_odd_position_is_read_as_the_orm_reads_it(registry):
    top = selectors.versions_listed("vision").order_by("-id").first().pk
    page = selectors.version_pages("vision").order_by("-id")
    assert [v.pk for v in page.filter(id__lt=str(10**30))[0:51]] == [v.pk for v in page[0:51]]
    assert isinstance(page[0:51][0], RowView) and isinstance(page.filter(id__lt=str(10**30))[0:51][0], ModelVersion)
    assert top in [v.pk for v in page.filter(id__lt=str(2**63 - 1))[0:51]]


def test_the_version_list_reads_its_pages_prepared(api, registry, calls):
    first = api.get("/models/vision/versions", {"page_size": "2"}).json()
    second = api.get(first["next"]).json()
    assert [v["version"] for v in first["results"] + second["results"]] == ["3.0", "2.0", "1.0"]
    assert calls[0] == {"model_name": "vision"} and calls[1]["model_name"] == "vision"
    assert calls[1]["position"] == int(calls[1]["position"])
    calls.clear()
    assert [v["version"] for v in api.get("/models/vision/versions", {"status": "training"}).json()["results"]]
    assert calls == []  # a filtered list is read by its queryset


def _model_shown(model) -> dict:
    return {**RegisteredModelListSerializer().to_representation(model), "pk": model.pk}


def test_a_page_of_models_read_prepared_is_the_page_its_queryset_reads(registry, make_model):
    """selectors.model_pages: pages of models in the order of their names, the cursor's position a name."""
    for name in ("A-1", "a.b", "a_b", "zz"):
        make_model(name)
    names = sorted(selectors.models_listed().values_list("name", flat=True))
    for ordering, lookup in [(("name",), None), (("name",), "name__gt"), (("-name",), "name__lt")]:
        for position in [*names, "", "m", "it's", "Ünïcode", "a%b"]:  # a forged cursor's too
            page = selectors.model_pages().order_by(*ordering)
            expected = selectors.models_listed().order_by(*ordering)
            if lookup:
                page = page.filter(**{lookup: position})
                expected = expected.filter(**{lookup: position})
            _assert_same_slices(page, expected, _model_shown, unread=lambda model: model.readme)


def test_the_model_list_reads_its_pages_prepared(api, registry, make_model, calls):
    for i in range(3):
        make_model(f"more-{i}")
    first = api.get("/models", {"page_size": "2"}).json()
    rest = api.get(first["next"]).json()
    last = api.get(rest["next"]).json()
    shown = [m["name"] for m in first["results"] + rest["results"] + last["results"]]
    assert shown == ["more-0", "more-1", "more-2", "other", "vision"] and last["next"] is None
    assert first["results"][0] == {**first["results"][0], "default_version": None}
    assert [m["default_version"] for m in api.get("/models").json()["results"]][-2:] == ["1.0", "1.0"]
    assert calls[0] == {} and calls[1] == {"position": "more-1"}
    calls.clear()
    assert [m["name"] for m in api.get("/models", {"is_active": "true"}).json()["results"]]
    assert calls == []  # a filtered list is read by its queryset


# --- Prepared inserts (PreparedInsertModel) -------------------------------------------------------------


def _django_insert(obj) -> None:
    """The same save through Django's own insert, for comparison."""
    with mock.patch.object(PreparedInsertModel, "_do_insert", Model._do_insert):
        obj.save(force_insert=True)


def _row(model, pk) -> dict:
    return model.objects.filter(pk=pk).values().get()


def test_an_inserted_row_is_the_row_django_inserts(db):
    # The same values through both paths: the same SQL, the same row (but its id), the same instance state.
    made = {}
    for path, insert in (("prepared", lambda obj: obj.save(force_insert=True)), ("django", _django_insert)):
        statements: list[str] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            model = RegisteredModel.objects.create(name=f"m-{path}", model_type="vision")
            sha = ("a" if path == "prepared" else "b") * 64
            artifact = Artifact(sha256=sha, size=3, storage_key=f"sha256/{sha}")
            insert(artifact)
            version = ModelVersion(model=model, version="1.0", format="onnx", artifact=artifact, accuracy=0.5)
            version.input_shape, version.metrics = [1, 3], {"auc": 0.25}
            insert(version)
            event = AuditEvent(actor="ci", via="api", action="create", object_type="version", changes={"a": [1, 2]})
            insert(event)
        made[path] = (statements, artifact, version, event)
    (p_queries, p_artifact, p_version, p_event), (d_queries, d_artifact, d_version, d_event) = (
        made["prepared"],
        made["django"],
    )
    assert p_queries == d_queries and len(p_queries) == 4
    assert p_version.pk and p_event.pk and p_version.created_at and p_event.at
    for model, p, d, differ in (
        (Artifact, p_artifact, d_artifact, {"sha256", "storage_key", "created_at"}),
        (ModelVersion, p_version, d_version, {"id", "model_id", "artifact_id", "created_at", "updated_at"}),
        (AuditEvent, p_event, d_event, {"id", "at"}),
    ):
        p_row, d_row = _row(model, p.pk), _row(model, d.pk)
        assert {k: v for k, v in p_row.items() if k not in differ} == {
            k: v for k, v in d_row.items() if k not in differ
        }
        assert p_row == {k: getattr(p, k) for k in p_row}  # the instance holds what was written, its id too


def test_an_expression_value_is_inserted_by_django(db):
    event = AuditEvent(actor="ci", via="api", action="create", object_type="version", at=Now(), changes={})
    event.save(force_insert=True)
    assert AuditEvent.objects.get(pk=event.pk).at is not None


def test_registering_a_version_inserts_its_rows_prepared(api, make_model, monkeypatch):
    compiled = []
    real = prepared_module._Insert.__init__

    def counting(self, model, *args, **kwargs):
        compiled.append(model.__name__)
        real(self, model, *args, **kwargs)

    monkeypatch.setattr(prepared_module, "_INSERTS", threading.local())  # this thread's compiled inserts forgotten
    monkeypatch.setattr(prepared_module._Insert, "__init__", counting)
    make_model("vision")
    for label in ("1.0", "2.0"):
        response = api.post(
            "/models/vision/versions",
            {"version": label, "format": "onnx", "file": upload(label.encode())},
            format="multipart",
        )
        assert response.status_code == 201, response.content
    # Compiled once each, for the first registration; the second used them.
    assert sorted(compiled) == ["Artifact", "AuditEvent", "ModelVersion"]
