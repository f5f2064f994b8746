"""/models/{name}/versions and everything under it: registering versions (the seed's multipart form and
JSON), validation, the default version, archiving, files (attach, download), deletion, filters and the
size and content-type limits."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from deployments_app.models import Deployment
from models_app.models import ModelFormat, ModelVersion
from tests.conftest import deploy, sha256, staged_files, stored_files, upload

pytestmark = pytest.mark.django_db

METRICS = ["accuracy", "precision", "recall", "f1_score", "mAP"]


def url(model, version: str | None = None, suffix: str = "") -> str:
    name = model if isinstance(model, str) else model.name
    base = f"/models/{name}/versions"
    if version is not None:
        base += f"/{version}"
    return base + suffix


def post_form(api, model, form: dict, data: bytes | None = None, file_name: str = "model.onnx"):
    form = dict(form)
    if data is not None:
        form["file"] = upload(data, file_name)
    return api.post(url(model), form, format="multipart")


def post_json(api, model, body):
    return api.post(url(model), body, format="json")


def post_version(api, model, encoding: str, fields: dict, data: bytes | None = None):
    """Create a version with a multipart form (with `data` as its file) or with JSON (which has no file)."""
    return post_form(api, model, fields, data) if encoding == "multipart" else post_json(api, model, fields)


def defaults_of(model) -> list[str]:
    return list(ModelVersion.objects.filter(model=model, is_default=True).values_list("version", flat=True))


def file_bytes(response) -> bytes:
    # Consuming the stream closes the response (the test client's wrapper does it). Calling close() by
    # hand would fire request_finished -> close_old_connections inside the test's transaction, which
    # drops a PostgreSQL connection.
    return b"".join(response.streaming_content)


def assert_nothing_stored(storage_dir):
    assert stored_files(storage_dir) == []
    assert staged_files(storage_dir) == []


# --- Create: the seed's multipart form ----------------------------------------------------------------
def test_create_with_the_seed_curl_form(api, make_model, storage_dir):
    model = make_model(name="image_classifier")
    data = b"PK\x03\x04 a saved model archive"

    response = post_form(
        api,
        model,
        {
            "version": "v2",
            "format": "tensorflow_saved_model",
            "accuracy": "0.95",
            "input_shape": "[1,3,224,224]",
            "output_shape": "[1,1000]",
        },
        data,
        file_name="model.zip",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["model"] == "image_classifier"
    assert body["version"] == "v2"
    assert body["format"] == "tensorflow_saved_model"
    assert body["status"] == "training"
    assert body["accuracy"] == 0.95
    assert body["input_shape"] == [1, 3, 224, 224]
    assert body["output_shape"] == [1, 1000]
    assert body["file_size"] == len(data)
    assert body["checksum"] == sha256(data)
    assert body["file_name"] == "model.zip"
    assert body["file_url"] == "/models/image_classifier/versions/v2/file"
    assert body["deployed_to"] == []
    assert body["is_default"] is True  # the model's first version
    assert response["Location"].endswith("/models/image_classifier/versions/v2")
    # The storage key is not a server path, and the stored bytes are the uploaded ones.
    assert not body["file_path"].startswith("/")
    assert str(storage_dir) not in body["file_path"]
    files = stored_files(storage_dir)
    assert len(files) == 1
    assert files[0].read_bytes() == data
    assert staged_files(storage_dir) == []

    row = ModelVersion.objects.get(model=model, version="v2")
    assert row.checksum == sha256(data)
    assert row.file_size == len(data)
    assert row.accuracy == 0.95
    assert row.input_shape == [1, 3, 224, 224]


def test_create_with_the_seed_python_client_form(api, make_model):
    model = make_model(name="mobilenet_v3")

    response = post_form(
        api,
        model,
        {
            "version": "v1",
            "format": "onnx",
            "accuracy": "0.85",
            "input_shape": "[1,3,224,224]",
            "output_shape": "[1,1000]",
        },
        b"onnx bytes",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["accuracy"] == 0.85
    assert response.json()["checksum"] == sha256(b"onnx bytes")


def test_create_with_every_field_in_a_form(api, make_model):
    model = make_model()

    response = post_form(
        api,
        model,
        {
            "version": "v1.0.0",
            "format": "pytorch",
            "status": "testing",
            "accuracy": "0.9",
            "precision": "0.8",
            "recall": "0.7",
            "f1_score": "0.75",
            "mAP": "0.6",
            "input_shape": "[-1,3,224,224]",
            "output_shape": "[null,1000]",
            "training_config": '{"epochs": 90, "optimizer": {"name": "sgd", "lr": 0.1}}',
            "deployment_config": '{"replicas": 2}',
            "release_notes": "First release.",
        },
        b"torch",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "testing"
    assert [body[m] for m in METRICS] == [0.9, 0.8, 0.7, 0.75, 0.6]
    assert body["input_shape"] == [-1, 3, 224, 224]
    assert body["output_shape"] == [None, 1000]
    assert body["training_config"] == {"epochs": 90, "optimizer": {"name": "sgd", "lr": 0.1}}
    assert body["deployment_config"] == {"replicas": 2}
    assert body["release_notes"] == "First release."
    row = ModelVersion.objects.get(model=model, version="v1.0.0")
    assert row.training_config == {"epochs": 90, "optimizer": {"name": "sgd", "lr": 0.1}}
    assert row.mAP == 0.6


def test_create_with_json_and_no_file(api, make_model, storage_dir):
    model = make_model()

    response = post_json(
        api,
        model,
        {
            "version": "v1",
            "format": "tflite",
            "accuracy": 0.5,
            "input_shape": [1, 224, 224, 3],
            "training_config": {"epochs": 3, "augment": ["flip", "crop"]},
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["file_size"] is None
    assert body["checksum"] is None
    assert body["file_path"] is None
    assert body["file_url"] is None
    assert body["training_config"] == {"epochs": 3, "augment": ["flip", "crop"]}
    assert body["input_shape"] == [1, 224, 224, 3]
    row = ModelVersion.objects.get(model=model, version="v1")
    assert row.artifact_id is None
    assert row.training_config == {"epochs": 3, "augment": ["flip", "crop"]}
    assert stored_files(storage_dir) == []


def test_create_with_a_form_and_no_file(api, make_model):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx"})

    assert response.status_code == 201, response.json()
    assert response.json()["checksum"] is None


def test_create_for_unknown_model_is_404_and_stores_nothing(api, db, storage_dir):
    response = post_form(api, "nope", {"version": "v1", "format": "onnx"}, b"bytes")

    assert response.status_code == 404
    assert ModelVersion.objects.count() == 0
    assert_nothing_stored(storage_dir)


def test_unknown_format_is_400_listing_allowed_values(api, make_model, storage_dir):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "keras"}, b"bytes")

    assert response.status_code == 400
    message = " ".join(response.json()["errors"]["format"])
    for allowed in ModelFormat.values:
        assert allowed in message
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


def test_missing_version_and_format_are_named(api, make_model):
    model = make_model()

    response = post_json(api, model, {"accuracy": 0.5})

    assert response.status_code == 400
    assert {"version", "format"} <= set(response.json()["errors"])


def test_unknown_field_is_400_and_stores_nothing(api, make_model, storage_dir):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", "acuracy": "0.9"}, b"bytes")

    assert response.status_code == 400
    assert "acuracy" in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("field", ["checksum", "file_size", "deployed_to", "model", "id"])
def test_read_only_or_foreign_fields_in_create_are_400(api, make_model, field):
    model = make_model()

    response = post_json(api, model, {"version": "v1", "format": "onnx", field: "x"})

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not ModelVersion.objects.exists()


def test_status_can_be_given(api, make_model):
    model = make_model()

    response = post_json(api, model, {"version": "v1", "format": "onnx", "status": "approved"})

    assert response.status_code == 201
    assert response.json()["status"] == "approved"


def test_unknown_status_is_400(api, make_model):
    model = make_model()

    response = post_json(api, model, {"version": "v1", "format": "onnx", "status": "shipped"})

    assert response.status_code == 400
    assert "status" in response.json()["errors"]


# --- Version strings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["default", "latest", "Default", "LATEST"])
def test_reserved_versions_are_400(api, make_model, storage_dir, version):
    model = make_model()

    response = post_form(api, model, {"version": version, "format": "onnx"}, b"bytes")

    assert response.status_code == 400
    assert "version" in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize(
    "version", ["a/b", "../x", ".hidden", "v 1", "vé", "v1\x00", "x" * 65, "", "a\\b", "v1?x", "v1#x"], ids=repr
)
def test_invalid_versions_are_400(api, make_model, version):
    model = make_model()

    response = post_json(api, model, {"version": version, "format": "onnx"})

    assert response.status_code == 400
    assert "version" in response.json()["errors"]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("version", ["v1.0.0", "1.0.0-rc.1+build.5", "2024.01.31"])
def test_dotted_versions_work_in_every_url(api, make_model, make_version, version):
    model = make_model(name="resnet.50")
    make_version(model, "v0")
    response = post_json(api, model, {"version": version, "format": "onnx"})
    assert response.status_code == 201, response.json()
    assert response["Location"].endswith(f"/models/resnet.50/versions/{version}")

    got = api.get(url(model, version))
    assert got.status_code == 200
    assert got.json()["version"] == version

    patched = api.patch(url(model, version), {"release_notes": "notes"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["release_notes"] == "notes"

    attached = api.put(url(model, version, "/file"), b"dotted bytes", content_type="application/octet-stream")
    assert attached.status_code == 200, attached.json()
    assert attached.json()["file_url"] == f"/models/resnet.50/versions/{version}/file"

    downloaded = api.get(url(model, version, "/file"))
    assert downloaded.status_code == 200
    assert file_bytes(downloaded) == b"dotted bytes"

    made_default = api.post(url(model, version, "/default"))
    assert made_default.status_code == 200
    assert made_default.json()["is_default"] is True
    assert api.get(url(model, "default")).json()["version"] == version
    assert file_bytes(api.get(url(model, "default", "/file"))) == b"dotted bytes"

    assert api.post(url(model, "v0", "/default")).status_code == 200
    assert api.delete(url(model, version)).status_code == 204
    assert api.get(url(model, version)).status_code == 404


# --- Duplicates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["multipart", "json"])
def test_duplicate_version_is_409_and_changes_or_stores_nothing(api, make_model, make_version, storage_dir, encoding):
    model = make_model()
    make_version(model, "v1", data=b"first")
    before = stored_files(storage_dir)

    response = post_version(api, model, encoding, {"version": "v1", "format": "tflite"}, b"a different file")

    assert response.status_code == 409
    body = response.json()
    assert "already exists" in body["detail"]
    assert "version" in body["errors"]
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert ModelVersion.objects.get(model=model).checksum == sha256(b"first")
    assert ModelVersion.objects.get(model=model).format == "onnx"
    assert stored_files(storage_dir) == before
    assert staged_files(storage_dir) == []


def test_same_version_in_another_model_is_fine(api, make_model, make_version):
    make_version(make_model(), "v1")
    other = make_model()

    assert post_json(api, other, {"version": "v1", "format": "onnx"}).status_code == 201


# --- Metrics and shapes --------------------------------------------------------------------------------
@pytest.mark.parametrize("field", METRICS)
@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-0.1", "1.5", "abc", "0x1", "true"]
)
def test_invalid_metric_in_form_is_400_naming_the_field(api, make_model, storage_dir, field, value):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", field: value}, b"bytes")

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("value", ["0", "1", "0.5", "1e-3", "1.0"])
def test_valid_metric_values(api, make_model, value):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", "accuracy": value})

    assert response.status_code == 201, response.json()
    assert response.json()["accuracy"] == float(value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-0.1", "1.5", "true", '"abc"', "[0.5]"])
def test_invalid_metric_in_json_is_400(api, make_model, literal):
    model = make_model()
    body = '{"version": "v1", "format": "onnx", "accuracy": %s}' % literal

    response = api.post(url(model), body, content_type="application/json")

    assert response.status_code == 400, response.json()
    assert not ModelVersion.objects.exists()
    if literal not in ("NaN", "Infinity", "-Infinity"):  # those are refused by the JSON parser itself
        assert "accuracy" in response.json()["errors"]


def test_a_metric_left_out_or_null_is_none(api, make_model):
    """A metric is not given by leaving it out (a form, JSON) or by sending null (JSON). An empty form
    field is refused rather than guessed at (tests/test_strict_inputs.py)."""
    model = make_model()
    assert post_version(api, model, "multipart", {"version": "v1", "format": "onnx"}).json()["accuracy"] is None
    response = post_version(api, model, "json", {"version": "v2", "format": "onnx", "accuracy": None})
    assert response.status_code == 201
    assert response.json()["accuracy"] is None


@pytest.mark.parametrize(
    "encoding, shape, expected",
    [
        ("multipart", "[1,3,224,224]", [1, 3, 224, 224]),
        ("multipart", "[-1,3]", [-1, 3]),
        ("multipart", "[null,3]", [None, 3]),
        ("multipart", " [1, 1000] ", [1, 1000]),
        ("json", [None, 3, -1], [None, 3, -1]),
    ],
)
def test_valid_shapes(api, make_model, encoding, shape, expected):
    """A form carries a shape as JSON text, a JSON body as a list."""
    model = make_model()

    response = post_version(
        api, model, encoding, {"version": "v1", "format": "onnx", "input_shape": shape, "output_shape": shape}
    )

    assert response.status_code == 201, response.json()
    assert response.json()["input_shape"] == expected
    assert response.json()["output_shape"] == expected
    assert ModelVersion.objects.get(model=model).input_shape == expected


FORM_SHAPES = ["[0]", "[1.5]", "notjson", "{}", "[]", "[-2,3]", "[true]", "[1,[2]]", '"[1]"', "[NaN]", "1", '["1"]']
JSON_SHAPES = [[0], [1.5], {}, [], "notjson", [True], 3]


@pytest.mark.parametrize(
    "encoding, field, shape",
    [
        *(("multipart", field, text) for text in FORM_SHAPES for field in ("input_shape", "output_shape")),
        *(("json", "input_shape", shape) for shape in JSON_SHAPES),
    ],
)
def test_invalid_shapes_are_400(api, make_model, storage_dir, encoding, field, shape):
    model = make_model()

    response = post_version(api, model, encoding, {"version": "v1", "format": "onnx", field: shape}, b"bytes")

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize(
    "encoding, config",
    [
        ("multipart", "notjson"),
        ("multipart", "{1: 2}"),
        ("multipart", "[1,2]"),
        ("multipart", '"text"'),
        ("multipart", "3"),
        ("multipart", "null"),
        ("json", [1, 2]),
    ],
)
def test_training_config_must_be_a_json_object(api, make_model, encoding, config):
    model = make_model()

    response = post_version(api, model, encoding, {"version": "v1", "format": "onnx", "training_config": config})

    assert response.status_code == 400
    assert "training_config" in response.json()["errors"]


@pytest.mark.parametrize(
    "field, text",
    [
        ("input_shape", "[" * 100_000),
        ("output_shape", "[" * 100_000 + "]" * 100_000),
        ("training_config", '{"a":' * 100_000),
        ("training_config", '{"a":' * 100_000 + "1" + "}" * 100_000),
        ("deployment_config", "[" * 100_000),
    ],
    ids=["shape-open", "shape-closed", "config-open", "config-closed", "deployment-config"],
)
def test_deeply_nested_json_in_a_form_field_is_400_not_500(api, make_model, settings, field, text):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", field: text})

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not ModelVersion.objects.exists()


def test_deeply_nested_json_body_is_400_not_500(api, make_model):
    model = make_model()

    response = api.post(url(model), "[" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]


def test_deep_but_parseable_training_config_is_400(api, make_model):
    """Nested deeper than the registry stores, yet shallow enough for the JSON parser."""
    model = make_model()
    config = {}
    for _ in range(200):
        config = {"a": config}

    response = post_json(api, model, {"version": "v1", "format": "onnx", "training_config": config})

    assert response.status_code == 400
    assert "training_config" in response.json()["errors"]


@pytest.mark.parametrize("field", ["training_config", "deployment_config"])
@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param('{"note": "a\\u0000b"}', {"note": "a\x00b"}, id="nul-value"),
        pytest.param('{"a\\u0000": 1}', {"a\x00": 1}, id="nul-key"),
        pytest.param('{"note": "\\ud800"}', None, id="lone-surrogate"),
        pytest.param('{"deep": {"list": ["ok", "\\udfff"]}}', None, id="nested-surrogate"),
    ],
)
@pytest.mark.parametrize("method", ["create", "patch"])
def test_unstorable_text_in_json_object_fields_is_400_or_round_trips(
    api, make_model, make_version, field, raw, expected, method
):
    """Either refused with a 400 naming the field, or stored and returned unchanged; never a 500, and the
    same on both databases."""
    model = make_model()
    if method == "create":
        body = '{"version": "v1", "format": "onnx", "%s": %s}' % (field, raw)
        response = api.post(url(model), body, content_type="application/json")
    else:
        make_version(model, "v1")
        response = api.patch(url(model, "v1"), '{"%s": %s}' % (field, raw), content_type="application/json")

    assert response.status_code in (200, 201, 400), response.content
    if response.status_code == 400:
        assert field in response.json()["errors"]
    else:
        assert expected is not None
        assert response.json()[field] == expected
        assert api.get(url(model, "v1")).json()[field] == expected


# --- The default version ------------------------------------------------------------------------------
def test_first_version_becomes_default(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    assert defaults_of(model) == ["v1"]
    assert api.get(url(model, "v2")).json()["is_default"] is False
    assert api.get(f"/models/{model.name}").json()["default_version"] == "v1"


def test_version_created_with_is_default_takes_over(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = post_form(api, model, {"version": "v2", "format": "onnx", "is_default": "true"}, b"two")

    assert response.status_code == 201
    assert response.json()["is_default"] is True
    assert defaults_of(model) == ["v2"]


def test_post_default_switches_the_default(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    response = api.post(url(model, "v2", "/default"))

    assert response.status_code == 200
    assert response.json()["version"] == "v2"
    assert response.json()["is_default"] is True
    assert defaults_of(model) == ["v2"]
    assert api.get(url(model, "default")).json()["version"] == "v2"
    assert api.get(url(model, "v1")).json()["is_default"] is False


def test_post_default_on_the_default_changes_nothing(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.post(url(model, "v1", "/default"))

    assert response.status_code == 200
    assert defaults_of(model) == ["v1"]


def test_post_default_on_unknown_version_is_404(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    assert api.post(url(model, "v9", "/default")).status_code == 404
    assert defaults_of(model) == ["v1"]


def test_patch_is_default_true_switches_the_default(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")
    make_version(model, "v3", data=b"three")

    response = api.patch(url(model, "v3"), {"is_default": True}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["is_default"] is True
    assert defaults_of(model) == ["v3"]


def test_patch_is_default_false_alone_is_400(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(url(model, "v1"), {"is_default": False}, format="json")

    assert response.status_code == 400
    assert "is_default" in response.json()["errors"]
    assert defaults_of(model) == ["v1"]


def test_patch_is_default_false_with_other_changes_is_400_and_changes_nothing(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(url(model, "v1"), {"is_default": False, "release_notes": "new"}, format="json")

    assert response.status_code == 400
    assert "is_default" in response.json()["errors"]
    row = ModelVersion.objects.get(model=model)
    assert row.is_default is True
    assert row.release_notes == ""


def test_default_is_404_when_the_model_has_no_version(api, make_model):
    model = make_model()

    response = api.get(url(model, "default"))

    assert response.status_code == 404
    assert "default" in response.json()["detail"]
    assert api.get(url(model, "default", "/file")).status_code == 404


def test_default_is_404_when_the_only_version_is_archived(api, make_model):
    model = make_model()

    created = post_json(api, model, {"version": "v1", "format": "onnx", "status": "archived"})

    assert created.status_code == 201
    assert created.json()["is_default"] is False
    assert api.get(url(model, "default")).status_code == 404


def test_default_of_unknown_model_is_404(api, db):
    assert api.get(url("nope", "default")).status_code == 404
    assert api.get(url("nope", "latest")).status_code == 404


def test_get_default_version(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    response = api.get(url(model, "default"))

    assert response.status_code == 200
    assert response.json()["version"] == "v1"
    assert response.json()["is_default"] is True


def test_latest_is_the_most_recently_created(api, make_model, make_version):
    model = make_model()
    assert api.get(url(model, "latest")).status_code == 404
    make_version(model, "v2", data=b"two")
    make_version(model, "v10", data=b"ten")
    make_version(model, "v1", data=b"one")

    response = api.get(url(model, "latest"))

    assert response.status_code == 200
    assert response.json()["version"] == "v1"


# --- Archiving ----------------------------------------------------------------------------------------
def test_archiving_the_default_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(url(model, "v1"), {"status": "archived"}, format="json")

    assert response.status_code == 409
    assert "status" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model, version="v1").status == "training"


def test_archiving_a_deployed_version_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")
    assert deploy(api, model, "v2").status_code == 201

    response = api.patch(url(model, "v2"), {"status": "archived"}, format="json")

    assert response.status_code == 409
    assert "deployed" in response.json()["detail"]
    assert ModelVersion.objects.get(model=model, version="v2").status == "training"


def test_archiving_a_version_that_is_neither_default_nor_deployed(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    response = api.patch(url(model, "v2"), {"status": "archived"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert ModelVersion.objects.get(model=model, version="v2").status == "archived"


def test_archived_version_cannot_become_default(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two", status="archived")

    by_post = api.post(url(model, "v2", "/default"))
    by_patch = api.patch(url(model, "v2"), {"is_default": True}, format="json")

    assert by_post.status_code == 409
    assert by_patch.status_code == 409
    assert defaults_of(model) == ["v1"]


def test_archive_and_make_default_at_once_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    response = api.patch(url(model, "v2"), {"status": "archived", "is_default": True}, format="json")

    assert response.status_code == 409
    assert defaults_of(model) == ["v1"]
    assert ModelVersion.objects.get(model=model, version="v2").status == "training"


def test_create_archived_and_default_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = post_json(api, model, {"version": "v2", "format": "onnx", "status": "archived", "is_default": True})

    assert response.status_code == 409
    assert not ModelVersion.objects.filter(version="v2").exists()
    assert defaults_of(model) == ["v1"]


def test_archived_version_cannot_be_deployed(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two", status="archived")

    response = deploy(api, model, "v2")

    assert response.status_code == 409
    assert not Deployment.objects.exists()


def test_unarchiving(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two", status="archived")

    response = api.patch(url(model, "v2"), {"status": "approved"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert api.post(url(model, "v2", "/default")).status_code == 200


# --- PATCH --------------------------------------------------------------------------------------------
def test_patch_metadata(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(
        url(model, "v1"),
        {
            "accuracy": 0.91,
            "status": "approved",
            "input_shape": [1, 3],
            "training_config": {"epochs": 5},
            "release_notes": "better",
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    row = ModelVersion.objects.get(model=model, version="v1")
    assert (row.accuracy, row.status, row.input_shape, row.training_config, row.release_notes) == (
        0.91,
        "approved",
        [1, 3],
        {"epochs": 5},
        "better",
    )


def test_patch_with_a_form(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(url(model, "v1"), {"accuracy": "0.7", "output_shape": "[1,10]"}, format="multipart")

    assert response.status_code == 200, response.json()
    assert response.json()["accuracy"] == 0.7
    assert response.json()["output_shape"] == [1, 10]


@pytest.mark.parametrize(
    "field, value",
    [("version", "v9"), ("checksum", "0" * 64), ("model", "other"), ("file_size", 1), ("colour", "blue")],
)
def test_patch_immutable_or_unknown_field_is_400(api, make_model, make_version, field, value):
    model = make_model()
    make_version(model, "v1")

    response = api.patch(url(model, "v1"), {field: value, "release_notes": "changed"}, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    row = ModelVersion.objects.get(model=model)
    assert row.version == "v1"
    assert row.release_notes == ""


def test_patch_file_is_400(api, make_model, make_version, storage_dir):
    model = make_model()
    make_version(model, "v1", data=b"original")

    response = api.patch(url(model, "v1"), {"file": upload(b"replacement")}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).checksum == sha256(b"original")
    assert [p.read_bytes() for p in stored_files(storage_dir)] == [b"original"]


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-0.1", "1.5", "abc"])
def test_patch_invalid_metric_is_400_and_changes_nothing(api, make_model, make_version, value):
    model = make_model()
    make_version(model, "v1", accuracy="0.5")

    response = api.patch(url(model, "v1"), {"accuracy": value}, format="multipart")

    assert response.status_code == 400
    assert "accuracy" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).accuracy == 0.5


def test_patch_unknown_version_is_404(api, make_model):
    model = make_model()

    assert api.patch(url(model, "v1"), {"release_notes": "x"}, format="json").status_code == 404


# --- Retrieve and list --------------------------------------------------------------------------------
def test_get_version(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"abc", accuracy="0.8")

    response = api.get(url(model, "v1"))

    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "v1"
    assert body["accuracy"] == 0.8
    assert body["checksum"] == sha256(b"abc")
    assert body["file_size"] == 3


def test_get_version_of_another_model_is_404(api, make_model, make_version):
    make_version(make_model(name="a"), "v1")
    make_model(name="b")

    assert api.get(url("b", "v1")).status_code == 404
    assert api.get(url("a", "v2")).status_code == 404
    assert api.get(url("nope", "v1")).status_code == 404
    assert api.get(url("nope")).status_code == 404


def test_list_versions(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"1")
    make_version(model, "v2", data=b"2")
    make_version(make_model(), "v3", data=b"3")

    response = api.get(url(model))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [v["version"] for v in body["results"]] == ["v2", "v1"]


def test_filter_by_status(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"1", status="approved")
    make_version(model, "v2", data=b"2", status="testing")
    make_version(model, "v3", data=b"3", status="approved")

    response = api.get(url(model), {"status": "approved"})

    assert response.status_code == 200
    assert [v["version"] for v in response.json()["results"]] == ["v3", "v1"]


@pytest.mark.parametrize(
    "value, expected", [("true", ["v1"]), ("1", ["v1"]), ("false", ["v3", "v2"]), ("0", ["v3", "v2"])]
)
def test_filter_by_is_default(api, make_model, make_version, value, expected):
    model = make_model()
    for v in ("v1", "v2", "v3"):
        make_version(model, v, data=v.encode())

    response = api.get(url(model), {"is_default": value})

    assert response.status_code == 200
    assert [v["version"] for v in response.json()["results"]] == expected


@pytest.mark.parametrize("params", [{"status": "shipped"}, {"is_default": "maybe"}, {"is_default": "yes"}])
def test_invalid_version_filters_are_400(api, make_model, make_version, params):
    model = make_model()
    make_version(model, "v1")

    response = api.get(url(model), params)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(params)


def test_format_query_parameter_is_not_an_output_format(api, make_model, make_version):
    """DRF's URL_FORMAT_OVERRIDE would answer ?format=onnx with a 404 (no renderer named onnx); here it is
    the versions' format filter, and elsewhere an unknown query parameter."""
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"lite", format="tflite")

    listed = api.get(url(model), {"format": "onnx"})
    single = api.get(url(model, "v1"), {"format": "onnx"})
    models = api.get("/models", {"format": "onnx"})

    assert listed.status_code == 200
    assert listed["Content-Type"].startswith("application/json")
    assert [v["version"] for v in listed.json()["results"]] == ["v1"]
    assert single.status_code == 200
    assert single.json()["format"] == "onnx"
    assert models.status_code == 400
    assert "format" in models.json()["errors"]


def test_format_query_parameter_does_not_break_creation(api, make_model):
    model = make_model()

    response = api.post(url(model) + "?format=onnx", {"version": "v1", "format": "onnx"}, format="json")

    assert response.status_code == 201


# --- Files: attach ------------------------------------------------------------------------------------
def test_attach_file_with_raw_body(api, make_model, storage_dir):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    data = b"\x00raw model bytes\xff" * 10

    response = api.put(url(model, "v1", "/file") + "?filename=net.onnx", data, content_type="application/octet-stream")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["checksum"] == sha256(data)
    assert body["file_size"] == len(data)
    assert body["file_name"] == "net.onnx"
    assert [p.read_bytes() for p in stored_files(storage_dir)] == [data]
    assert staged_files(storage_dir) == []
    assert file_bytes(api.get(url(model, "v1", "/file"))) == data


def test_attach_file_with_multipart(api, make_model, storage_dir):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    data = b"multipart model"

    response = api.put(url(model, "v1", "/file"), {"file": upload(data, "m.onnx")}, format="multipart")

    assert response.status_code == 200, response.json()
    assert response.json()["checksum"] == sha256(data)
    assert response.json()["file_name"] == "m.onnx"
    assert ModelVersion.objects.get(model=model).checksum == sha256(data)
    assert [p.read_bytes() for p in stored_files(storage_dir)] == [data]


@pytest.mark.parametrize("second", ["raw", "multipart"])
def test_attaching_a_second_time_is_409(api, make_model, storage_dir, second):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    assert api.put(url(model, "v1", "/file"), b"first", content_type="application/octet-stream").status_code == 200

    if second == "raw":
        response = api.put(url(model, "v1", "/file"), b"second", content_type="application/octet-stream")
    else:
        response = api.put(url(model, "v1", "/file"), {"file": upload(b"second")}, format="multipart")

    assert response.status_code == 409
    assert "file" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).checksum == sha256(b"first")
    assert [p.read_bytes() for p in stored_files(storage_dir)] == [b"first"]
    assert staged_files(storage_dir) == []


def test_attaching_to_a_version_created_with_a_file_is_409(api, make_model, make_version, storage_dir):
    model = make_model()
    make_version(model, "v1", data=b"original")

    response = api.put(url(model, "v1", "/file"), b"other", content_type="application/octet-stream")

    assert response.status_code == 409
    assert [p.read_bytes() for p in stored_files(storage_dir)] == [b"original"]


def test_declared_sha256_in_create_form(api, make_model):
    model = make_model()
    data = b"declared"

    response = post_form(api, model, {"version": "v1", "format": "onnx", "sha256": sha256(data).upper()}, data)

    assert response.status_code == 201, response.json()
    assert response.json()["checksum"] == sha256(data)


def test_declared_sha256_mismatch_in_create_is_400_and_stores_nothing(api, make_model, storage_dir):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", "sha256": sha256(b"other")}, b"actual")

    assert response.status_code == 400
    assert "sha256" in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("value", ["abc", "g" * 64, "0" * 63])
def test_malformed_declared_sha256_is_400(api, make_model, storage_dir, value):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx", "sha256": value}, b"actual")

    assert response.status_code == 400
    assert "sha256" in response.json()["errors"]
    assert_nothing_stored(storage_dir)


def test_declared_sha256_without_a_file_is_400(api, make_model):
    model = make_model()

    response = post_json(api, model, {"version": "v1", "format": "onnx", "sha256": sha256(b"x")})

    assert response.status_code == 400
    assert "sha256" in response.json()["errors"]


@pytest.mark.parametrize("how", ["query", "content-digest", "digest", "form"])
def test_declared_sha256_mismatch_on_attach_is_400_and_stores_nothing(api, make_model, storage_dir, how):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    data = b"actual bytes"
    wrong = hashlib.sha256(b"something else").digest()
    target = url(model, "v1", "/file")

    if how == "query":
        response = api.put(f"{target}?sha256={wrong.hex()}", data, content_type="application/octet-stream")
    elif how == "content-digest":
        response = api.put(
            target,
            data,
            content_type="application/octet-stream",
            HTTP_CONTENT_DIGEST=f"sha-256=:{base64.b64encode(wrong).decode()}:",
        )
    elif how == "digest":
        response = api.put(
            target,
            data,
            content_type="application/octet-stream",
            HTTP_DIGEST=f"SHA-256={base64.b64encode(wrong).decode()}",
        )
    else:
        response = api.put(target, {"file": upload(data), "sha256": wrong.hex()}, format="multipart")

    assert response.status_code == 400
    assert "sha256" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)


def test_matching_content_digest_on_attach(api, make_model):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    data = b"digested"

    response = api.put(
        url(model, "v1", "/file"),
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_DIGEST=f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:",
    )

    assert response.status_code == 200
    assert response.json()["checksum"] == sha256(data)


def test_empty_file_in_create_form_is_400(api, make_model, storage_dir):
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"")

    assert response.status_code == 400
    assert "file" in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_empty_file_on_attach_is_400(api, make_model, storage_dir, how):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})

    if how == "raw":
        response = api.put(url(model, "v1", "/file"), b"", content_type="application/octet-stream")
    else:
        response = api.put(url(model, "v1", "/file"), {"file": upload(b"")}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)


def test_attach_with_wrong_content_type_is_415(api, make_model, storage_dir):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})

    response = api.put(url(model, "v1", "/file"), b"bytes", content_type="text/plain")

    assert response.status_code == 415
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)


def test_multipart_attach_without_a_file_is_400(api, make_model, storage_dir):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})

    response = api.put(url(model, "v1", "/file"), {"sha256": "0" * 64}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()["errors"]
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)


def test_attach_to_unknown_version_is_404(api, make_model, storage_dir):
    model = make_model()

    response = api.put(url(model, "v1", "/file"), b"bytes", content_type="application/octet-stream")

    assert response.status_code == 404
    assert_nothing_stored(storage_dir)


# --- Files: download ----------------------------------------------------------------------------------
def test_download_streams_exact_bytes_with_headers(api, make_model, make_version):
    model = make_model()
    data = bytes(range(256)) * 40
    make_version(model, "v1", data=data)

    response = api.get(url(model, "v1", "/file"))

    assert response.status_code == 200
    assert response.streaming
    assert response["ETag"] == f'"{sha256(data)}"'
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="model.onnx"'
    assert file_bytes(response) == data


@pytest.mark.parametrize(
    "client_name",
    [
        '../../etc/pass"wd;x.onnx',
        "..\\..\\evil.onnx",
        "mod\u00e8le \u202egnp.onnx",
        "a\r\nX-Injected: 1.onnx",
        ".bashrc",
    ],
    ids=repr,
)
def test_download_file_name_is_safe(api, make_model, client_name):
    model = make_model()
    response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"bytes", file_name=client_name)
    assert response.status_code == 201, response.json()

    stored_name = response.json()["file_name"]
    download = api.get(url(model, "v1", "/file"))
    disposition = download["Content-Disposition"]
    assert file_bytes(download) == b"bytes"

    assert stored_name
    for forbidden in ("/", "\\", '"', ";", "\r", "\n", "\u202e", " ", "\u00e8"):
        assert forbidden not in stored_name
    assert not stored_name.startswith(".")
    assert disposition == f'attachment; filename="{stored_name}"'
    assert "X-Injected" not in download


@pytest.mark.parametrize(
    "how, client_name",
    [
        ("form", "..."),
        ("form", "...."),
        ("raw", "..."),
        ("raw", ".."),
        ("raw", "."),
    ],
)
def test_file_name_of_only_dots_is_handled_as_json(api, make_model, storage_dir, how, client_name):
    """The client's file name is metadata: either a fallback name is used or the error is the API's JSON."""
    model = make_model()
    if how == "form":
        response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"bytes", file_name=client_name)
    else:
        post_json(api, model, {"version": "v1", "format": "onnx"})
        response = api.put(
            url(model, "v1", "/file") + f"?filename={client_name}", b"bytes", content_type="application/octet-stream"
        )

    assert response["Content-Type"] == "application/json"
    assert response.status_code in (200, 201, 400)
    if response.status_code == 400:
        assert "file" in response.json()["errors"]
        assert ModelVersion.objects.filter(model=model).exclude(artifact=None).count() == 0
    else:
        assert response.json()["file_name"]
        assert not response.json()["file_name"].startswith(".")


def test_if_none_match_is_304(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"cached")
    etag = f'"{sha256(b"cached")}"'

    response = api.get(url(model, "v1", "/file"), HTTP_IF_NONE_MATCH=etag)
    listed = api.get(url(model, "v1", "/file"), HTTP_IF_NONE_MATCH=f'"{"0" * 64}", {etag}')
    stale = api.get(url(model, "v1", "/file"), HTTP_IF_NONE_MATCH=f'"{"0" * 64}"')

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert listed.status_code == 304
    assert stale.status_code == 200
    assert file_bytes(stale) == b"cached"


@pytest.mark.parametrize("header", ["*", 'W/"{sha}"'])
def test_if_none_match_weak_and_star_are_304(api, make_model, make_version, header):
    model = make_model()
    make_version(model, "v1", data=b"cached")

    response = api.get(url(model, "v1", "/file"), HTTP_IF_NONE_MATCH=header.format(sha=sha256(b"cached")))

    assert response.status_code == 304


def test_download_default_file(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=b"two")

    first = api.get(url(model, "default", "/file"))
    assert first.status_code == 200
    assert file_bytes(first) == b"one"
    assert first["ETag"] == f'"{sha256(b"one")}"'

    api.post(url(model, "v2", "/default"))
    second = api.get(url(model, "default", "/file"))
    assert file_bytes(second) == b"two"


def test_download_of_a_version_without_file_is_404(api, make_model):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})

    assert api.get(url(model, "v1", "/file")).status_code == 404
    assert api.get(url(model, "default", "/file")).status_code == 404
    assert api.get(url(model, "v2", "/file")).status_code == 404


# --- Delete -------------------------------------------------------------------------------------------
def test_delete_version(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")

    response = api.delete(url(model, "v2"))

    assert response.status_code == 204
    assert list(ModelVersion.objects.filter(model=model).values_list("version", flat=True)) == ["v1"]
    assert api.get(url(model, "v2")).status_code == 404


def test_delete_default_version_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")

    response = api.delete(url(model, "v1"))

    assert response.status_code == 409
    assert "default" in response.json()["detail"]
    assert ModelVersion.objects.filter(model=model, version="v1").exists()


def test_delete_version_with_deployment_history_is_409(api, make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", data=b"two")
    assert deploy(api, model, "v2").status_code == 201
    assert deploy(api, model, "v1").status_code == 201  # v2 is now only history (superseded)

    response = api.delete(url(model, "v2"))

    assert response.status_code == 409
    assert "deployment history" in response.json()["detail"]
    assert ModelVersion.objects.filter(model=model, version="v2").exists()


def test_delete_unknown_version_is_404(api, make_model):
    assert api.delete(url(make_model(), "v1")).status_code == 404


# --- Content types and size limits -------------------------------------------------------------------
def test_text_plain_post_is_415(api, make_model):
    model = make_model()

    response = api.post(url(model), "version=v1&format=onnx", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["detail"]
    assert not ModelVersion.objects.exists()


def test_octet_stream_post_is_415(api, make_model, storage_dir):
    """A raw body is only for PUT .../file; creating a version takes a form or JSON."""
    model = make_model()

    response = api.post(url(model), b"raw model bytes", content_type="application/octet-stream")

    assert response.status_code == 415
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("encoding", ["json", "multipart"])
def test_a_body_or_form_fields_over_the_limit_are_413(api, make_model, settings, storage_dir, encoding):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    model = make_model()

    response = post_version(
        api, model, encoding, {"version": "v1", "format": "onnx", "release_notes": "x" * 4096}, b"bytes"
    )

    assert response.status_code == 413
    assert response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


def test_json_body_under_the_limit_is_accepted(api, make_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    model = make_model()
    body = json.dumps({"version": "v1", "format": "onnx", "release_notes": "x" * 1024})

    assert api.post(url(model), body, content_type="application/json").status_code == 201


def test_patch_json_body_over_the_limit_is_413(api, make_model, make_version, settings):
    model = make_model()
    make_version(model, "v1")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    response = api.patch(url(model, "v1"), {"release_notes": "x" * 4096}, format="json")

    assert response.status_code == 413
    assert ModelVersion.objects.get(model=model).release_notes == ""


def test_upload_over_the_limit_is_413_and_leaves_nothing(api, make_model, settings, storage_dir):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1024
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"x" * 4096)

    assert response.status_code == 413
    assert response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


def test_upload_at_the_limit_is_accepted(api, make_model, settings):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1024
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"x" * 1024)

    assert response.status_code == 201
    assert response.json()["file_size"] == 1024


def test_upload_far_over_the_limit_is_refused_before_reading(api, make_model, settings, storage_dir):
    """Larger than the limit plus the multipart allowance: refused from Content-Length alone."""
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1024
    model = make_model()

    response = post_form(api, model, {"version": "v1", "format": "onnx"}, b"x" * (1024 + 1024 * 1024 + 1))

    assert response.status_code == 413
    assert not ModelVersion.objects.exists()
    assert_nothing_stored(storage_dir)


@pytest.mark.parametrize("size", [1025, 1024 * 1024 + 2048])
def test_raw_attach_over_the_limit_is_413_and_leaves_nothing(api, make_model, settings, storage_dir, size):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1024

    response = api.put(url(model, "v1", "/file"), b"x" * size, content_type="application/octet-stream")

    assert response.status_code == 413
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)


def test_multipart_attach_over_the_limit_is_413_and_leaves_nothing(api, make_model, settings, storage_dir):
    model = make_model()
    post_json(api, model, {"version": "v1", "format": "onnx"})
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1024

    response = api.put(url(model, "v1", "/file"), {"file": upload(b"x" * 4096)}, format="multipart")

    assert response.status_code == 413
    assert ModelVersion.objects.get(model=model).artifact_id is None
    assert_nothing_stored(storage_dir)
