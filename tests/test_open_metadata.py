"""Open metadata (issue #9, section 1): named metrics and tags per version, lineage fields, filtering and
sorting versions by metric and tag with a cursor, a Markdown model card, and formats and model types an
operator adds by setting. Through the API (JSON and the seed's multipart form), the admin and the
register_version command, all calling the same services."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from models_app import services
from models_app.models import ModelVersion, RegisteredModel, VersionMetric, VersionTag
from registry_site.models import AuditEvent
from registry_site.validators import MAX_METRICS_PER_VERSION, MAX_TAG_VALUE_LENGTH
from tests.conftest import registry_state, upload

pytestmark = pytest.mark.django_db

SEED_ORDER = [
    "id",
    "model",
    "version",
    "format",
    "status",
    "file_path",
    "file_name",
    "file_size",
    "checksum",
    "file_url",
    "format_check",
    "format_check_detail",
    "accuracy",
    "precision",
    "recall",
    "f1_score",
    "mAP",
]


def versions_url(model, suffix: str = "") -> str:
    name = model if isinstance(model, str) else model.name
    return f"/models/{name}/versions{suffix}"


def register(api, model, version: str, **fields):
    response = api.post(versions_url(model), {"version": version, "format": "onnx", **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def listed(api, model, query: str = "") -> list[str]:
    """Every version the list gives for `query`, following `next` to the end."""
    response = api.get(versions_url(model) + query)
    assert response.status_code == 200, response.json()
    names = [row["version"] for row in response.json()["results"]]
    while response.json()["next"]:
        response = api.get(response.json()["next"])
        assert response.status_code == 200, response.json()
        names += [row["version"] for row in response.json()["results"]]
    return names


# --- Registering and reading -------------------------------------------------------------------------
def test_json_registration_takes_metrics_tags_and_lineage(api, make_model):
    model = make_model()
    body = register(
        api,
        model,
        "v1",
        accuracy=0.9,
        metrics={"auc": 0.91, "val.loss": 12.5, "latency-ms": -3e-4},
        tags={"team": "vision", "dataset": "coco-2017"},
        training_run="https://mlflow.example.com/#/experiments/1/runs/abc",
        code_commit="3f2c1d9",
        dataset_name="coco",
        dataset_version="2017",
    )
    assert body["metrics"] == {"auc": 0.91, "latency-ms": -3e-4, "val.loss": 12.5}
    assert body["tags"] == {"dataset": "coco-2017", "team": "vision"}
    assert body["training_run"].endswith("/runs/abc") and body["code_commit"] == "3f2c1d9"
    assert (body["dataset_name"], body["dataset_version"]) == ("coco", "2017")
    # The seed's five keep their names, values and places.
    assert list(body)[: len(SEED_ORDER)] == SEED_ORDER
    assert body["accuracy"] == 0.9 and body["precision"] is None
    assert api.get(versions_url(model, "/v1")).json()["metrics"] == body["metrics"]


def test_the_seeds_multipart_form_takes_metrics_and_tags_as_json_text(api, make_model):
    model = make_model()
    form = {
        "version": "v1",
        "format": "onnx",
        "accuracy": "0.95",
        "metrics": '{"auc":0.91}',
        "tags": '{"team":"vision"}',
        "code_commit": "abc123",
        "file": upload(b"weights"),
    }
    response = api.post(versions_url(model), form, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["metrics"], body["tags"], body["accuracy"]) == ({"auc": 0.91}, {"team": "vision"}, 0.95)
    assert body["code_commit"] == "abc123" and body["checksum"]


def test_a_version_without_open_metadata_answers_empty_maps_and_lineage(api, make_version):
    version = make_version()
    body = api.get(versions_url(version.model, "/v1")).json()
    assert (body["metrics"], body["tags"], body["training_run"], body["dataset_version"]) == ({}, {}, "", "")


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("metrics", {"Bad Name": 1}, "not a valid name"),
        ("metrics", {"1st": 1}, "not a valid name"),
        ("metrics", {"a__b": 1}, "not a valid name"),
        ("metrics", {"x" * 65: 1}, "not a valid name"),
        ("metrics", {"auc": "0.9"}, "must be a number"),
        ("metrics", {"auc": True}, "must be a number"),
        ("metrics", {"auc": None}, "null removes a metric only when changing"),
        ("metrics", {"auc": 10**400}, "finite"),
        ("metrics", {"accuracy": 0.5}, "a field of its own"),
        ("metrics", [1, 2], "JSON object"),
        ("metrics", {f"m{i}": i for i in range(MAX_METRICS_PER_VERSION + 1)}, "At most 100 metrics"),
        ("tags", {"team": 1}, "must be text"),
        ("tags", {"team": None}, "must be text"),
        ("tags", {"team": ["a"]}, "must be text"),
        ("tags", {"team": ""}, "1 to 1000 characters"),
        ("tags", {"team": "x" * (MAX_TAG_VALUE_LENGTH + 1)}, "1 to 1000 characters"),
        ("tags", {"team": "a\nb"}, "control characters"),
        ("tags", {"bad key": "x"}, "not a valid name"),
        ("tags", {f"k{i}": "v" for i in range(101)}, "At most 100 tags"),
        ("code_commit", "abc\ndef", "control characters"),
        ("training_run", "x" * 513, "no more than 512"),
    ],
)
def test_bad_open_metadata_is_a_400_naming_the_field_and_writes_nothing(
    api, make_model, storage_dir, field, value, says
):
    model = make_model()
    before = registry_state(storage_dir)
    response = api.post(versions_url(model), {"version": "v1", "format": "onnx", field: value}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert says in " ".join(response.json()["errors"][field])
    assert registry_state(storage_dir) == before


@pytest.mark.parametrize(
    "text", ['{"auc": NaN}', '{"auc": Infinity}', '{"auc": 1e400}', '{"auc": -1e999}', "not json", '{"a b": 1}']
)
def test_nan_and_infinity_in_a_form_are_refused_naming_metrics(api, make_model, storage_dir, text):
    model = make_model()
    before = registry_state(storage_dir)
    form = {"version": "v1", "format": "onnx", "metrics": text, "file": upload(b"w")}
    response = api.post(versions_url(model), form, format="multipart")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == ["metrics"]
    assert registry_state(storage_dir) == before


def test_the_database_refuses_a_metric_that_is_not_finite_or_misnamed(make_version):
    version = make_version()
    for name, value in [("auc", float("nan")), ("auc", float("inf")), ("a__b", 1.0), ("bad name", 1.0)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            VersionMetric.objects.create(version=version, model=version.model, name=name, value=value)
    with pytest.raises(IntegrityError), transaction.atomic():
        VersionTag.objects.create(version=version, model=version.model, key="team", value="")


# --- Changing ----------------------------------------------------------------------------------------
def test_patch_merges_metrics_and_tags_and_null_removes_one(api, make_model):
    model = make_model()
    register(api, model, "v1", metrics={"auc": 0.9, "loss": 0.3}, tags={"team": "vision", "stage": "beta"})
    response = api.patch(
        versions_url(model, "/v1"),
        {"metrics": {"auc": 0.93, "loss": None, "f2": 0.7}, "tags": {"stage": None}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["metrics"] == {"auc": 0.93, "f2": 0.7}
    assert response.json()["tags"] == {"team": "vision"}
    event = AuditEvent.objects.filter(action="update").latest("id")
    assert event.changes == {
        "metrics": [{"auc": 0.9, "loss": 0.3}, {"auc": 0.93, "f2": 0.7}],
        "tags": [{"stage": "beta", "team": "vision"}, {"team": "vision"}],
    }


def test_registration_is_audited_with_metrics_tags_and_lineage(api, make_model):
    model = make_model()
    register(api, model, "v1", metrics={"auc": 0.9}, tags={"team": "vision"}, code_commit="abc")
    event = AuditEvent.objects.filter(action="create", object_type="version").latest("id")
    assert event.changes["metrics"] == {"auc": 0.9}
    assert event.changes["tags"] == {"team": "vision"}
    assert event.changes["code_commit"] == "abc"


def test_a_patch_that_changes_nothing_writes_no_event(api, make_model):
    model = make_model()
    register(api, model, "v1", metrics={"auc": 0.9})
    events = AuditEvent.objects.count()
    response = api.patch(versions_url(model, "/v1"), {"metrics": {"auc": 0.9}}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.count() == events


def test_a_patch_past_the_limit_is_refused_and_changes_nothing(api, make_model, storage_dir):
    model = make_model()
    register(api, model, "v1", metrics={f"m{i}": i for i in range(MAX_METRICS_PER_VERSION)})
    before = registry_state(storage_dir)
    response = api.patch(versions_url(model, "/v1"), {"metrics": {"one_more": 1}, "status": "testing"}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["metrics"]
    assert registry_state(storage_dir) == before


def test_lineage_can_be_changed_later(api, make_model):
    model = make_model()
    register(api, model, "v1")
    response = api.patch(
        versions_url(model, "/v1"), {"dataset_version": "2024-06", "code_commit": "f00"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["dataset_version"], response.json()["code_commit"]) == ("2024-06", "f00")


# --- Filtering ----------------------------------------------------------------------------------------
@pytest.fixture
def scored(api, make_model):
    """Six versions of one model: auc on four (two of them tied), tags on some, accuracy on some."""
    model = make_model(name="scored")
    register(api, model, "a", metrics={"auc": 0.5}, tags={"team": "vision"}, accuracy=0.7)
    register(api, model, "b", metrics={"auc": 0.9}, tags={"team": "audio"})
    register(api, model, "c")
    register(api, model, "d", metrics={"auc": 0.9}, tags={"team": "vision"}, accuracy=0.9)
    register(api, model, "e", metrics={"auc": -2.0, "loss": 1.0})
    register(api, model, "f", accuracy=0.8)
    other = make_model(name="other")
    register(api, other, "x", metrics={"auc": 0.99}, tags={"team": "vision"})
    return model


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?tag.team=vision", ["d", "a"]),
        ("?tag.team=nobody", []),
        ("?metric.auc__gte=0.9", ["d", "b"]),
        ("?metric.auc__gt=0.5", ["d", "b"]),
        ("?metric.auc__lt=0.5", ["e"]),
        ("?metric.auc__lte=0.5", ["e", "a"]),
        ("?metric.auc=0.9", ["d", "b"]),
        ("?metric.auc__exact=-2", ["e"]),
        ("?metric.accuracy__gte=0.8", ["f", "d"]),
        ("?metric.auc__gte=0.5&tag.team=vision", ["d", "a"]),
        ("?metric.auc__gte=0.5&tag.team=vision&metric.loss__lt=5", []),
    ],
)
def test_versions_filter_by_metric_and_tag(api, scored, query, expected):
    assert listed(api, scored, query) == expected


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("?metrics.auc=1", "metrics.auc"),
        ("?tag=vision", "tag"),
        ("?metric.auc__between=1", "metric.auc__between"),
        ("?metric.auc__gte=high", "metric.auc__gte"),
        ("?metric.auc__gte=nan", "metric.auc__gte"),
        ("?metric.auc__gte=1e400", "metric.auc__gte"),
        ("?metric.auc__gte=0.9%0A", "metric.auc__gte"),
        ("?metric.1bad=1", "metric.1bad"),
        ("?tag.bad__key=x", "tag.bad__key"),
        ("?tag.team=", "tag.team"),
        ("?tag.team=a&tag.team=b", "tag.team"),
        ("?ordering=metric.a__b", "ordering"),
        ("?ordering=auc", "ordering"),
        ("?ordering=updated_at", "ordering"),
        ("?ordering=", "ordering"),
    ],
)
def test_bad_filters_and_orders_are_a_400_naming_the_parameter(api, scored, query, parameter):
    response = api.get(versions_url(scored) + query)
    assert response.status_code == 400, response.json()
    assert parameter in response.json()["errors"], response.json()


# --- Ordering with a cursor ---------------------------------------------------------------------------
@pytest.mark.parametrize("page_size", [1, 2, 4, 50])
def test_ordering_by_a_metric_pages_with_a_cursor_ties_by_id_and_missing_last(api, scored, page_size):
    query = f"?page_size={page_size}&ordering="
    # a, b, c, d, e, f were created in that order: ties (b and d at 0.9) follow the id in the same direction.
    assert listed(api, scored, query + "-metric.auc") == ["d", "b", "a", "e", "f", "c"]
    assert listed(api, scored, query + "metric.auc") == ["e", "a", "b", "d", "c", "f"]
    assert listed(api, scored, query + "-metric.accuracy") == ["d", "f", "a", "e", "c", "b"]
    assert listed(api, scored, query + "accuracy") == ["a", "f", "d", "b", "c", "e"]
    assert listed(api, scored, query + "-created_at") == ["f", "e", "d", "c", "b", "a"]
    assert listed(api, scored, query + "version") == ["a", "b", "c", "d", "e", "f"]
    assert listed(api, scored, query + "-metric.nothing") == ["f", "e", "d", "c", "b", "a"]


def test_ordering_combines_with_filters(api, scored):
    assert listed(api, scored, "?ordering=metric.auc&tag.team=vision") == ["a", "d"]
    assert listed(api, scored, "?ordering=-metric.loss&metric.auc__lt=1") == ["e", "d", "b", "a"]


def test_previous_links_walk_back_over_the_same_pages(api, scored):
    pages = []
    response = api.get(versions_url(scored) + "?ordering=-metric.auc&page_size=2")
    while True:
        body = response.json()
        pages.append([row["version"] for row in body["results"]])
        if not body["next"]:
            break
        response = api.get(body["next"])
    assert pages == [["d", "b"], ["a", "e"], ["f", "c"]]
    assert body["previous"]
    back = api.get(body["previous"]).json()
    assert [row["version"] for row in back["results"]] == ["a", "e"]
    first = api.get(back["previous"]).json()
    assert [row["version"] for row in first["results"]] == ["d", "b"] and first["previous"] is None


def test_a_cursor_of_another_order_or_a_forged_one_is_refused(api, scored):
    body = api.get(versions_url(scored) + "?ordering=-metric.auc&page_size=2").json()
    cursor = body["next"].split("cursor=")[1].split("&")[0]
    assert api.get(versions_url(scored) + f"?ordering=metric.auc&cursor={cursor}").status_code == 404
    assert api.get(versions_url(scored) + "?ordering=metric.auc&cursor=bm9wZQ==").status_code == 404
    forged = base64.urlsafe_b64encode(json.dumps({"o": "-metric.auc", "s": 0, "k": ["abc", 1], "r": 0}).encode())
    assert api.get(versions_url(scored) + f"?ordering=-metric.auc&cursor={forged.decode()}").status_code == 404
    # The default order keeps DRF's own cursors, unchanged.
    plain = api.get(versions_url(scored) + "?page_size=2").json()
    assert [row["version"] for row in api.get(plain["next"]).json()["results"]] == ["d", "c"]


def test_a_sorted_page_costs_a_fixed_number_of_queries(api, make_model):
    model = make_model()
    for i in range(12):
        register(api, model, f"v{i}", metrics={"auc": i / 10}, tags={"n": str(i)})
    url = versions_url(model) + "?ordering=-metric.auc&page_size=5"
    with CaptureQueriesContext(connection) as small:
        assert api.get(url).status_code == 200
    url = versions_url(model) + "?ordering=-metric.auc&page_size=11"
    with CaptureQueriesContext(connection) as large:
        assert api.get(url).status_code == 200
    assert len(small) == len(large)


# --- Formats and model types -------------------------------------------------------------------------
def test_other_and_operator_added_formats_and_types_need_no_migration(api, make_model, settings):
    assert api.post("/models", {"name": "m", "model_type": "other"}, format="json").status_code == 201
    refused = api.post(versions_url("m"), {"version": "v1", "format": "gguf"}, format="json")
    assert refused.status_code == 400 and "use one of:" in refused.json()["errors"]["format"][0]
    assert "gguf" not in refused.json()["errors"]["format"][0].split("use one of:")[1]
    register(api, "m", "v0", format="other")

    settings.REGISTRY_EXTRA_FORMATS = ["sklearn", "gguf"]
    settings.REGISTRY_EXTRA_MODEL_TYPES = ["ranking"]
    assert register(api, "m", "v1", format="gguf")["format"] == "gguf"
    assert api.post("/models", {"name": "r", "model_type": "ranking"}, format="json").status_code == 201
    assert listed(api, "m", "?format=gguf") == ["v1"]
    assert [row["name"] for row in api.get("/models?model_type=ranking").json()["results"]] == ["r"]
    schema = api.get("/openapi.json").json()
    assert "gguf" in schema["components"]["schemas"]["FormatEnum"]["enum"]
    bad = api.post(versions_url("m"), {"version": "v2", "format": "xgboost"}, format="json")
    assert "gguf" in bad.json()["errors"]["format"][0]


def test_the_database_checks_only_the_shape_of_a_format(make_version):
    version = make_version()
    ModelVersion.objects.filter(pk=version.pk).update(format="safetensors")  # a value a setting may add
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(format="Not A Format")
    with pytest.raises(IntegrityError), transaction.atomic():
        RegisteredModel.objects.filter(pk=version.model_id).update(model_type="")


# --- The model card ----------------------------------------------------------------------------------
CARD = "# ResNet\n\n| metric | value |\n|---|---|\n| auc | 0.9 |\n\n<script>alert(1)</script> [x](javascript:alert(1))"


def test_the_model_card_is_in_the_models_page_not_in_the_list(api):
    response = api.post("/models", {"name": "m", "model_type": "audio", "readme": CARD}, format="json")
    assert response.status_code == 201 and response.json()["readme"] == CARD
    assert api.get("/models/m").json()["readme"] == CARD
    assert "readme" not in api.get("/models").json()["results"][0]
    assert api.patch("/models/m", {"readme": "new"}, format="json").json()["readme"] == "new"
    assert AuditEvent.objects.filter(action="update", object_repr="m").latest("id").changes["readme"][1] == "new"


def test_the_admin_renders_the_model_card_safely(admin_client, make_model):
    model = make_model(readme=CARD)
    page = admin_client.get(reverse("admin:models_app_registeredmodel_change", args=[model.pk])).content.decode()
    assert "<h1>ResNet</h1>" in page and "<td>auc</td>" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript' not in page


# --- Admin and command ---------------------------------------------------------------------------------
def test_the_admin_edits_metrics_and_tags_through_the_service(admin_client, api, make_model):
    model = make_model()
    register(api, model, "v1", metrics={"auc": 0.9, "loss": 1.0}, tags={"team": "vision"})
    version = ModelVersion.objects.get(model=model, version="v1")
    change = reverse("admin:models_app_modelversion_change", args=[version.pk])
    page = admin_client.get(change)
    form = page.context["adminform"].form
    assert json.loads(form["metrics"].value()) == {"auc": 0.9, "loss": 1.0}
    data = {"format": "onnx", "status": "training", "metrics": '{"auc": 0.95}', "tags": '{"team": "audio"}'}
    data.update({name: "{}" for name in ("training_config", "deployment_config")})
    response = admin_client.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    body = api.get(versions_url(model, "/v1")).json()
    assert (body["metrics"], body["tags"]) == ({"auc": 0.95}, {"team": "audio"})
    event = AuditEvent.objects.latest("id")
    assert event.via == "admin" and event.changes["metrics"] == [{"auc": 0.9, "loss": 1.0}, {"auc": 0.95}]
    refused = admin_client.post(change, {**data, "metrics": '{"a__b": 1}'})
    assert refused.status_code == 200 and "metrics" in refused.context["adminform"].form.errors


def test_register_version_command_takes_metrics_tags_and_lineage(make_model):
    model = make_model()
    call_command(
        "register_version",
        model.name,
        "v1",
        "--format",
        "onnx",
        "--metrics",
        '{"auc": 0.8}',
        "--tags",
        '{"team": "vision"}',
        "--code-commit",
        "abc",
    )
    version = ModelVersion.objects.get(model=model, version="v1")
    assert services.open_metadata.metrics_of(version) == {"auc": 0.8}
    assert services.open_metadata.tags_of(version) == {"team": "vision"}
    assert version.code_commit == "abc"


def test_metrics_read_back_exactly_in_a_list_and_a_read(api, make_model):
    """The list and the read carry the named metrics in the version's own query (a JSON object built by
    the database); every bit of a double survives it, on SQLite as on PostgreSQL."""
    model = make_model()
    values = {"a": 0.1 + 0.2, "b": 1e-300, "c": -123456789.12345679, "d": 2.0**53 + 2}
    register(api, model, "v1", metrics=values, tags={"k": "v \u00e9"})
    read = api.get(versions_url(model) + "/v1").json()
    assert read["metrics"] == values and read["tags"] == {"k": "v \u00e9"}
    assert api.get(versions_url(model)).json()["results"][0]["metrics"] == values


def test_the_schema_publishes_name_patterns_that_match_the_parameters_the_list_takes(api, make_model):
    """The list's vendor extension names its dynamic parameters by pattern; what it matches is what the
    server takes (a lookup's '__' after the name included), and a name the server refuses does not match."""
    import re

    operation = api.get("/openapi.json").json()["paths"]["/models/{name}/versions"]["get"]
    metric, tag = (re.compile(p["name-pattern"]) for p in operation["x-dynamic-query-parameters"])
    model = make_model()
    register(api, model, "v1", metrics={"val.loss": 0.2}, tags={"team": "vision"})
    for name in ("metric.val.loss", "metric.val.loss__lte", "metric.accuracy__gte"):
        assert metric.match(name) and api.get(versions_url(model), {name: 0.5}).status_code == 200
    assert tag.match("tag.team") and api.get(versions_url(model), {"tag.team": "vision"}).status_code == 200
    for name in ("metric.a__b", "metric.auc__between", "metric.1auc", "metric." + "a" * 65):
        assert not metric.match(name) and api.get(versions_url(model), {name: 1}).status_code == 400
