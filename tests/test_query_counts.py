"""The hot paths' queries, counted (issue #12): a read of a version by its model's name and version
string is one query, a page of versions or models is one query whatever its size, and registering a
version with its file a fixed handful. On SQLite and PostgreSQL alike (PostgreSQL adds the advisory lock
on the file's content). A change that adds a query to these paths fails here and says where."""

from __future__ import annotations

import pytest

from models_app.models import ModelVersion
from registry_site.models import AuditEvent
from tests.conftest import deployed, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(api, make_model, make_version):
    model = make_model("counted")
    for i in range(12):
        make_version(model, f"1.0.{i}")  # the first one becomes the default
    deployed(api, model, "1.0.3", "production")
    deployed(api, model, "1.0.3", "staging")
    api.get(f"/models/{model.name}/versions/1.0.0")  # anything built once per process is built
    return model


def test_get_a_version_is_one_query(api, model, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = api.get("/models/counted/versions/1.0.5")
    assert response.status_code == 200
    assert response.json()["version"] == "1.0.5" and response.json()["deployed_to"] == []
    assert response.json()["checksum"] and response.json()["file_url"] == "/models/counted/versions/1.0.5/file"


def test_get_a_deployed_version_is_one_query(api, model, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = api.get("/models/counted/versions/1.0.3")
    assert response.json()["deployed_to"] == ["production", "staging"]


def test_get_the_default_version_is_one_query(api, model, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = api.get("/models/counted/versions/default")
    assert response.status_code == 200 and response.json()["version"] == "1.0.0"


@pytest.mark.parametrize("size", [2, 10])
def test_a_page_of_versions_is_one_query(api, model, size, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = api.get("/models/counted/versions", {"page_size": size})
    results = response.json()["results"]
    assert len(results) == size and results[0]["version"] == "1.0.11"
    next_page = response.json()["next"]
    with django_assert_num_queries(1):
        response = api.get(next_page)
    assert len(response.json()["results"]) == min(size, 12 - size)
    by_version = {item["version"]: item for item in api.get("/models/counted/versions").json()["results"]}
    assert by_version["1.0.3"]["deployed_to"] == ["production", "staging"]
    assert by_version["1.0.4"]["deployed_to"] == []


def test_models_are_one_query_each(api, model, make_model, django_assert_num_queries):
    for i in range(5):
        make_model(f"other-{i}")
    with django_assert_num_queries(1):
        response = api.get("/models", {"page_size": 4})
    assert len(response.json()["results"]) == 4
    with django_assert_num_queries(1):
        response = api.get("/models/counted")
    assert response.json()["default_version"] == "1.0.0"


def test_what_is_missing_costs_one_query_more(api, model, make_model, django_assert_num_queries):
    """The model's existence is asked only when nothing was found, to say which of the two is missing."""
    with django_assert_num_queries(2):
        assert api.get("/models/counted/versions/9.9").json()["detail"] == (
            "Version '9.9' of model 'counted' not found."
        )
    with django_assert_num_queries(2):
        assert api.get("/models/nothing/versions/1.0.0").json()["detail"] == "Model 'nothing' not found."
    with django_assert_num_queries(2):
        assert api.get("/models/nothing/versions").status_code == 404
    with django_assert_num_queries(2):
        assert api.get("/models/nothing/versions/default").status_code == 404
    make_model("empty")
    with django_assert_num_queries(2):
        response = api.get("/models/empty/versions")
    assert response.status_code == 200 and response.json()["results"] == []
    with django_assert_num_queries(2):
        assert api.get("/models/empty/versions/default").json()["detail"] == "Model 'empty' has no default version."


def test_register_a_version_with_its_file(api, model, django_assert_num_queries):
    """Every write still audited, its file stored: in a fixed number of queries."""
    form = {"version": "2.0", "format": "onnx", "accuracy": "0.9", "input_shape": "[1,3,224,224]"}
    # In a test the transactions are savepoints (3 of these: the file's row is inserted under the content's
    # lock, with no savepoint of get_or_create's); PostgreSQL adds the advisory lock; the
    # audit event looks up the webhook subscriptions it would go to (registry_site.webhooks.enqueue); the
    # accuracy's first point in the metric history is its insert, its id (asked before the insert on
    # PostgreSQL, after it on SQLite) and its hour's rollup (issue #9); PostgreSQL's insert is a COPY,
    # which Django does not count: with the advisory lock, PostgreSQL's count equals SQLite's.
    expected = 16
    with django_assert_num_queries(expected):
        response = api.post("/models/counted/versions", {**form, "file": upload(b"x" * 4096)}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["file_size"] == 4096
    assert ModelVersion.objects.get(model=model, version="2.0").artifact_id == response.json()["checksum"]
    assert AuditEvent.objects.filter(action="create", object_repr="counted:2.0").exists()


def test_fields_built_once_still_read_callable_choices_anew(monkeypatch):
    """Serializer fields are built once per class (registry_site.fields), but a choice list that is a
    callable (an operator's setting, say) is read for every serializer: a new value is never frozen out."""
    from django.utils.choices import CallableChoiceIterator

    from models_app.serializers import VersionChangeSerializer
    from registry_site import fields

    allowed = ["onnx"]
    model_field = ModelVersion._meta.get_field("format")
    monkeypatch.setattr(model_field, "choices", CallableChoiceIterator(lambda: [(v, v) for v in allowed]))
    fields._forget_fields()
    try:
        first = VersionChangeSerializer(data={"format": "gguf"}, partial=True)
        assert not first.is_valid() and "gguf" in str(first.errors["format"][0])
        allowed.append("gguf")
        second = VersionChangeSerializer(data={"format": "gguf"}, partial=True)
        assert second.is_valid(), second.errors
        assert VersionChangeSerializer().fields["format"] is not second.fields["format"]
    finally:
        fields._forget_fields()
