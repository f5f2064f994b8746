"""Hostile input: path tricks in names, versions and file names; oversized and malformed bodies; unknown
enum values and query parameters; stored XSS in the admin; CSRF in the admin."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from django.http import multipartparser
from django.test import Client
from django.urls import reverse
from django.utils.http import parse_header_parameters

from deployments_app.models import Deployment
from models_app.models import ModelVersion, RegisteredModel
from registry_site import parsers
from registry_site.models import AuditEvent
from tests.conftest import registry_state, sha256, staged_files, stored_files, upload

pytestmark = pytest.mark.django_db

PATH_TRICKS = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "..%2Fx",
    "%2e%2e",
    "%2e%2e%2fx",
    "..",
    ".",
    "\uff0e\uff0e",  # fullwidth dots
    "\uff0e\uff0e\uff0fx",  # fullwidth dots and slash
    "a\x00b",
    "a\\b",
    "..\\x",
    "C:\\x",
    "a\x07b",
    "a\x1bb",
    "a\x7fb",
    "abc\u202egnp.exe",  # bidi override
    "a\u200bb",  # zero width space
    "a\nb",
    "a\rb",
    "a\tb",
    "a b",
    "a/b",
    "~root",
    "a\u0130",  # dotted capital I: lower() changes length
]
PATH_TRICK_IDS = [repr(t) for t in PATH_TRICKS]


def files_under(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def guard(storage_dir, tmp_path):
    """Asserts, after the test's requests, that nothing was written in the database, nothing stored, and
    no file appeared anywhere under the test's folder (the storage folder's parent included)."""

    class Guard:
        def __init__(self):
            self.rows = registry_state(storage_dir)
            self.tree = files_under(tmp_path)

        def assert_untouched(self):
            assert registry_state(storage_dir) == self.rows, "a refused request wrote to the database"
            assert files_under(tmp_path) == self.tree, files_under(tmp_path) - self.tree
            assert staged_files(storage_dir) == []

    return Guard


def error_fields(response) -> dict:
    return response.json().get("errors", {})


# --- Names and versions in bodies ------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["json", "multipart"])
@pytest.mark.parametrize("name", PATH_TRICKS, ids=PATH_TRICK_IDS)
def test_model_names_with_path_tricks_are_400(api, world, guard, name, encoding):
    g = guard()
    response = api.post("/models", {"name": name, "model_type": "classification"}, format=encoding)
    assert response.status_code == 400, response.content
    assert "name" in error_fields(response)
    g.assert_untouched()


@pytest.mark.parametrize("encoding", ["multipart", "json"])
@pytest.mark.parametrize("version", PATH_TRICKS, ids=PATH_TRICK_IDS)
def test_versions_with_path_tricks_are_400_with_nothing_stored(api, world, guard, version, encoding):
    g = guard()
    body = {"version": version, "format": "onnx"}
    if encoding == "multipart":  # with a file, which must not be stored either
        body["file"] = upload(b"evil")
    response = api.post("/models/resnet/versions", body, format=encoding)
    assert response.status_code == 400, response.content
    assert "version" in error_fields(response)
    g.assert_untouched()


@pytest.mark.parametrize("value", PATH_TRICKS, ids=PATH_TRICK_IDS)
def test_deploy_with_path_tricks_is_400(api, world, guard, value):
    g = guard()
    for body in (
        {"model_name": value, "version": "v1", "deployment_target": "staging"},
        {"model_name": "resnet", "version": value, "deployment_target": "staging"},
        {"model_name": "resnet", "version": "v1", "deployment_target": value},
    ):
        response = api.post("/deploy", body, format="json")
        assert response.status_code == 400, (body, response.content)
    g.assert_untouched()


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\t", "\x0b", "\x0c"], ids=repr)
def test_trailing_whitespace_never_reaches_a_stored_name(api, world, suffix):
    """A regex's `$` also matches before a final newline: whatever the API does with trailing
    whitespace (strip it or refuse it), no stored name or version ends in it."""
    api.post("/models", {"name": f"trail{suffix}", "model_type": "audio"}, format="json")
    api.post("/models/resnet/versions", {"version": f"v9{suffix}", "format": "onnx"}, format="json")
    for name in RegisteredModel.objects.values_list("name", flat=True):
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", name), repr(name)
    for version in ModelVersion.objects.values_list("version", flat=True):
        assert re.fullmatch(r"[A-Za-z0-9_.+\-]+", version), repr(version)


def test_reserved_and_overlong_names_are_400(api, world, guard):
    g = guard()
    for version in ("default", "latest", "LATEST", "v" * 65):
        assert (
            api.post("/models/resnet/versions", {"version": version, "format": "onnx"}, format="json").status_code
            == 400
        )
    assert api.post("/models", {"name": "m" * 129, "model_type": "audio"}, format="json").status_code == 400
    g.assert_untouched()


# --- Names and versions in the URL path -------------------------------------------------------------
URL_TRICKS = [
    "..%2Fx",
    "%2e%2e",
    "%2E%2E%2Fetc%2Fpasswd",
    "..",
    "%2F",
    "a%5Cb",
    "%5C..%5Cx",
    "%EF%BC%8E%EF%BC%8E",
    "a%0Ab",
    "%E2%80%AEx",
    "..%252Fx",
    "a%07b",
    "%7F",
    "%00",
    "a%00b",
]


@pytest.mark.parametrize("trick", URL_TRICKS)
def test_model_lookups_with_path_tricks_are_404(api, world, guard, trick):
    api.raise_request_exception = False
    g = guard()
    for method, path in [
        ("GET", f"/models/{trick}"),
        ("PATCH", f"/models/{trick}"),
        ("DELETE", f"/models/{trick}"),
        ("GET", f"/models/{trick}/versions"),
        ("POST", f"/models/{trick}/versions"),
        ("GET", f"/models/{trick}/versions/v1/file"),
        ("PUT", f"/models/{trick}/versions/v3/file"),
    ]:
        body = b"evil" if path.endswith("/file") else json.dumps({"version": "v9", "format": "onnx"})
        content_type = "application/octet-stream" if path.endswith("/file") else "application/json"
        response = api.generic(method, path, body, content_type=content_type)
        assert response.status_code in (400, 404), (method, path, response.status_code)
    g.assert_untouched()


@pytest.mark.parametrize("trick", URL_TRICKS)
def test_version_lookups_with_path_tricks_are_404(api, world, guard, trick):
    api.raise_request_exception = False
    g = guard()
    for method, path in [
        ("GET", f"/models/resnet/versions/{trick}"),
        ("PATCH", f"/models/resnet/versions/{trick}"),
        ("DELETE", f"/models/resnet/versions/{trick}"),
        ("POST", f"/models/resnet/versions/{trick}/default"),
        ("GET", f"/models/resnet/versions/{trick}/file"),
        ("PUT", f"/models/resnet/versions/{trick}/file"),
    ]:
        body = b"evil" if path.endswith("/file") else json.dumps({"accuracy": 0.5})
        content_type = "application/octet-stream" if path.endswith("/file") else "application/json"
        response = api.generic(method, path, body, content_type=content_type)
        assert response.status_code in (400, 404), (method, path, response.status_code)
    g.assert_untouched()


# --- Upload file names --------------------------------------------------------------------------------
FILE_NAME_TRICKS = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\evil.onnx",
    "C:\\evil.onnx",
    ".hidden.onnx",
    "..",
    "a\u202egnp.onnx",
    "a\x07b.onnx",
    "\uff0e\uff0e\uff0fevil.onnx",
    'quote".onnx',
    "semi;colon.onnx",
    "new\rline.onnx",
    "tab\tname.onnx",
    "%2e%2e%2fevil.onnx",
    "&lt;script&gt;.onnx",
    "<script>.onnx",
]
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]*")


def multipart(fields: dict[str, str], file_name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body with the client's file name exactly as given (Django's test client would take the
    basename of it first)."""
    boundary = "----hostile-boundary-7MA4YWxkTrZu0gW"
    parts = []
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    escaped = file_name.replace("\\", "\\\\").replace('"', '\\"')
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{escaped}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode("utf-8")
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def assert_stored_only_by_hash(storage_dir, tmp_path, data: bytes, tree_before: set[str]) -> None:
    """Every stored file sits under its sha256, the upload's among them, and nothing appeared anywhere
    else under the test's folder."""
    digest = sha256(data)
    stored = [p.relative_to(storage_dir).as_posix() for p in stored_files(storage_dir)]
    assert f"sha256/{digest[:2]}/{digest[2:4]}/{digest}" in stored
    for key in stored:
        assert re.fullmatch(r"sha256/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}", key), key
    new = {p for p in files_under(tmp_path) - tree_before if not p.startswith("storage/sha256")}
    assert new == set(), new


def assert_safe_download(api, path: str, file_name: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert not re.search(r"[\x00-\x1f\x7f/\\\u202e]", disposition), repr(disposition)
    quoted = re.findall(r'filename="([^"]*)"', disposition)
    assert quoted == [file_name], disposition


def _upload_outcome(api, response, world, storage_dir, tmp_path, tree, version: str, data: bytes) -> None:
    """Either the file was stored (under its sha256, with a safe name that downloads safely), or the
    request was refused with 400 and wrote nothing. Never a version silently left without its file."""
    if response.status_code == 400:
        assert {p for p in files_under(tmp_path) - tree if not p.startswith("storage/.incoming")} == set()
        return
    assert 200 <= response.status_code < 300, response.content
    row = ModelVersion.objects.select_related("artifact").get(model=world.model, version=version)
    assert row.checksum == sha256(data), "the client's file was dropped, yet the request succeeded"
    assert SAFE_FILE_NAME.fullmatch(row.file_name), repr(row.file_name)
    assert response.json()["file_name"] == row.file_name
    assert_stored_only_by_hash(storage_dir, tmp_path, data, tree)
    assert_safe_download(api, f"/models/resnet/versions/{version}/file", row.file_name)


@pytest.mark.parametrize("file_name", [*FILE_NAME_TRICKS, "."], ids=repr)
def test_upload_file_names_are_kept_only_sanitized(api, world, storage_dir, tmp_path, file_name):
    tree = files_under(tmp_path)
    body, content_type = multipart({"version": "v9", "format": "onnx"}, file_name, b"weights-9")
    response = api.generic("POST", "/models/resnet/versions", body, content_type=content_type)
    _upload_outcome(api, response, world, storage_dir, tmp_path, tree, "v9", b"weights-9")
    assert response.status_code == 201


def test_each_upload_reads_its_own_part_headers_through_the_parsers_cache(api, world):
    # registry_site.parsers keeps Django's parse of a part's header lines: the multipart parser reads
    # through it, and two uploads with the same lines but other names each get their own.
    assert multipartparser.parse_header_parameters is parsers._parse_header_line
    for version, file_name in (("v7", "first.onnx"), ("v8", "second.onnx"), ("v9", "first.onnx")):
        body, content_type = multipart({"version": version, "format": "onnx"}, file_name, version.encode())
        response = api.generic("POST", "/models/resnet/versions", body, content_type=content_type)
        assert response.status_code == 201, response.content
        assert (response.json()["version"], response.json()["file_name"]) == (version, file_name)
    line = "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''mod%C3%A8le.onnx"
    assert parsers._parse_header_line(line) == parse_header_parameters(line)


@pytest.mark.parametrize("file_name", [*FILE_NAME_TRICKS, "."], ids=repr)
def test_put_file_names_are_kept_only_sanitized(api, world, storage_dir, tmp_path, file_name):
    tree = files_under(tmp_path)
    body, content_type = multipart({}, file_name, b"weights-3")
    response = api.generic("PUT", "/models/resnet/versions/v3/file", body, content_type=content_type)
    _upload_outcome(api, response, world, storage_dir, tmp_path, tree, "v3", b"weights-3")
    assert response.status_code == 200


@pytest.mark.parametrize("file_name", [*FILE_NAME_TRICKS, ".", ""], ids=repr)
def test_raw_upload_filename_parameter_is_kept_only_sanitized(api, world, storage_dir, tmp_path, file_name):
    tree = files_under(tmp_path)
    response = api.generic(
        "PUT",
        "/models/resnet/versions/v3/file",
        b"raw-3",
        content_type="application/octet-stream",
        QUERY_STRING=f"filename={quote(file_name, safe='')}",
    )
    assert response.status_code == 200, response.content
    _upload_outcome(api, response, world, storage_dir, tmp_path, tree, "v3", b"raw-3")


def test_a_nul_byte_in_the_raw_filename_parameter_is_sanitized(api, world):
    response = api.generic(
        "PUT",
        "/models/resnet/versions/v3/file",
        b"raw-nul",
        content_type="application/octet-stream",
        QUERY_STRING="filename=a%00b%0d%0aX-Evil:%201.onnx",
    )
    assert response.status_code == 200, response.content
    assert SAFE_FILE_NAME.fullmatch(ModelVersion.objects.get(model=world.model, version="v3").file_name)


# --- Oversized and malformed bodies ----------------------------------------------------------------
def test_oversized_description_is_400(api, world, guard):
    g = guard()
    assert (
        api.post(
            "/models", {"name": "big", "model_type": "audio", "description": "x" * 10_001}, format="json"
        ).status_code
        == 400
    )
    assert api.patch("/models/resnet", {"description": "x" * 10_001}, format="json").status_code == 400
    g.assert_untouched()
    assert (
        api.post(
            "/models", {"name": "big", "model_type": "audio", "description": "x" * 10_000}, format="json"
        ).status_code
        == 201
    )


def test_oversized_release_notes_are_400(api, world, guard):
    g = guard()
    notes = "x" * 100_001
    assert (
        api.post(
            "/models/resnet/versions", {"version": "v9", "format": "onnx", "release_notes": notes}, format="json"
        ).status_code
        == 400
    )
    assert (
        api.post(
            "/models/resnet/versions",
            {"version": "v9", "format": "onnx", "release_notes": notes, "file": upload(b"nine")},
            format="multipart",
        ).status_code
        == 400
    )
    assert api.patch("/models/resnet/versions/v1", {"release_notes": notes}, format="json").status_code == 400
    g.assert_untouched()
    assert api.patch("/models/resnet/versions/v1", {"release_notes": "x" * 100_000}, format="json").status_code == 200


def test_oversized_rollback_reason_and_deployed_by_are_400(api, world, guard):
    g = guard()
    body = {"model_name": "resnet", "version": "v1", "deployment_target": "staging", "deployed_by": "x" * 151}
    assert api.post("/deploy", body, format="json").status_code == 400
    g.assert_untouched()


@pytest.mark.parametrize(
    "shape",
    [
        list(range(1, 18)),  # rank 17
        [1] * 100_000,  # huge array
        [2**31],  # dimension too big
        [0],
        [-2],
        [1.5],
        [True],
        ["1"],
        [[1, 2]],
        [],
        {"a": 1},
        "[1,2",
    ],
    ids=[
        "rank17",
        "huge",
        "too-big",
        "zero",
        "minus2",
        "float",
        "bool",
        "string",
        "nested",
        "empty",
        "object",
        "bad-json",
    ],
)
def test_malformed_and_huge_shapes_are_400(api, world, guard, shape):
    g = guard()
    for field in ("input_shape", "output_shape"):
        response = api.post("/models/resnet/versions", {"version": "v9", "format": "onnx", field: shape}, format="json")
        assert response.status_code == 400, (field, response.content[:200])
        assert field in error_fields(response)
        assert api.patch("/models/resnet/versions/v1", {field: shape}, format="json").status_code == 400
    g.assert_untouched()


def test_huge_shape_as_form_text_is_400(api, world, guard):
    g = guard()
    text = "[" + ",".join(["1"] * 200_000) + "]"
    response = api.post(
        "/models/resnet/versions", {"version": "v9", "format": "onnx", "input_shape": text}, format="multipart"
    )
    assert response.status_code in (400, 413)
    g.assert_untouched()


def test_deeply_nested_json_bodies_are_400(api, world, guard):
    g = guard()
    for depth in (100, 5_000, 200_000):
        nested = "[" * depth + "]" * depth
        body = '{"name": "deep", "model_type": "audio", "description": ' + nested + "}"
        response = api.generic("POST", "/models", body, content_type="application/json")
        assert response.status_code == 400, (depth, response.status_code)
    g.assert_untouched()


def test_deeply_nested_configs_are_400(api, world, guard):
    g = guard()
    for depth in (33, 1_000, 100_000):
        nested = '{"a": ' * depth + "1" + "}" * depth
        body = '{"version": "v9", "format": "onnx", "training_config": ' + nested + "}"
        response = api.generic("POST", "/models/resnet/versions", body, content_type="application/json")
        assert response.status_code == 400, (depth, response.status_code)
        # And as form text.
        response = api.post(
            "/models/resnet/versions",
            {"version": "v9", "format": "onnx", "training_config": nested},
            format="multipart",
        )
        assert response.status_code in (400, 413), (depth, response.status_code)
    g.assert_untouched()


def test_oversized_configs_are_400(api, world, guard):
    g = guard()
    big = {"k": "x" * 70_000}
    assert (
        api.post(
            "/models/resnet/versions", {"version": "v9", "format": "onnx", "training_config": big}, format="json"
        ).status_code
        == 400
    )
    assert (
        api.post(
            "/deploy",
            {"model_name": "resnet", "version": "v1", "deployment_target": "s", "deployment_config": big},
            format="json",
        ).status_code
        == 400
    )
    g.assert_untouched()


def test_a_body_over_the_json_limit_is_413(api, world, guard, settings):
    g = guard()
    body = json.dumps(
        {"name": "big", "model_type": "audio", "description": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    )
    response = api.generic("POST", "/models", body, content_type="application/json")
    assert response.status_code == 413
    g.assert_untouched()


NON_FINITE_BODIES = [
    ("POST", "/models/resnet/versions", '{"version": "v9", "format": "onnx", "accuracy": %s}'),
    ("PATCH", "/models/resnet/versions/v1", '{"f1_score": %s}'),
    ("POST", "/models/resnet/versions", '{"version": "v9", "format": "onnx", "training_config": {"lr": %s}}'),
    ("PATCH", "/models/resnet/versions/v1", '{"deployment_config": {"x": [%s]}}'),
    (
        "POST",
        "/deploy",
        '{"model_name": "resnet", "version": "v1", "deployment_target": "s", "deployment_config": {"x": %s}}',
    ),
    ("POST", "/models/resnet/versions", '{"version": "v9", "format": "onnx", "input_shape": [1, %s]}'),
]


def _non_finite_cases():
    for constant in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400"):
        for method, path, template in NON_FINITE_BODIES:
            field = re.findall(r'"(\w+)": [\[{]?[^"]*%s', template)[-1]
            yield pytest.param(constant, method, path, template % constant, id=f"{method}-{field}-{constant}")


@pytest.mark.parametrize("constant,method,path,body", list(_non_finite_cases()))
def test_nan_and_infinity_are_400(api, world, guard, constant, method, path, body):
    g = guard()
    response = api.generic(method, path, body, content_type="application/json")
    assert response.status_code == 400, (path, body, response.status_code, response.content[:200])
    g.assert_untouched()


def _form_cases():
    for text in ("nan", "NaN", "inf", "-inf", "Infinity", "1e400"):
        yield pytest.param("accuracy", text, id=f"accuracy-{text}")
        yield pytest.param("input_shape", "[%s]" % text, id=f"input_shape-{text}")
        yield pytest.param("training_config", '{"lr": %s}' % text, id=f"training_config-{text}")


@pytest.mark.parametrize("field,value", list(_form_cases()))
def test_nan_and_infinity_in_form_fields_are_400(api, world, guard, field, value):
    g = guard()
    response = api.post(
        "/models/resnet/versions", {"version": "v9", "format": "onnx", field: value}, format="multipart"
    )
    assert response.status_code == 400, (field, value, response.status_code, response.content[:200])
    g.assert_untouched()


# --- Enum values and query parameters ---------------------------------------------------------------
def test_unknown_enum_values_are_400_with_the_allowed_list(api, world, guard):
    g = guard()
    cases = [
        (
            "POST",
            "/models",
            {"name": "m", "model_type": "robot"},
            "model_type",
            ["classification", "object_detection", "face_recognition", "segmentation", "audio"],
        ),
        (
            "POST",
            "/models/resnet/versions",
            {"version": "v9", "format": "keras"},
            "format",
            ["tensorflow_saved_model", "onnx", "tflite", "pytorch"],
        ),
        (
            "POST",
            "/models/resnet/versions",
            {"version": "v9", "format": "onnx", "status": "live"},
            "status",
            ["training", "testing", "approved", "deprecated", "archived"],
        ),
        (
            "PATCH",
            "/models/resnet/versions/v1",
            {"status": "APPROVED"},
            "status",
            ["training", "testing", "approved", "deprecated", "archived"],
        ),
        ("PATCH", "/models/resnet", {"model_type": "Classification"}, "model_type", ["classification"]),
    ]
    for method, path, body, field, allowed in cases:
        response = api.generic(method, path, json.dumps(body), content_type="application/json")
        assert response.status_code == 400, (path, body)
        message = " ".join(error_fields(response)[field])
        for value in allowed:
            assert value in message, (field, message)
        assert value in response.json()["detail"]
    g.assert_untouched()


@pytest.mark.parametrize(
    "path,query",
    [
        ("/models", {"model_type": "robot"}),
        ("/models/resnet/versions", {"status": "live"}),
        ("/models/resnet/versions", {"format": "keras"}),
        ("/deployments", {"status": "exploded"}),
    ],
)
def test_unknown_enum_values_in_filters_are_400_with_the_allowed_list(api, world, path, query):
    response = api.get(path, query)
    assert response.status_code == 400  # (this part holds today)
    field = next(iter(query))
    message = " ".join(error_fields(response)[field])
    choices = {
        "model_type": "classification",
        "status": "approved" if "versions" in path else "rolled_back",
        "format": "onnx",
    }
    assert choices[field] in message, message


@pytest.mark.parametrize(
    "path,query",
    [
        ("/models", {"stauts": "approved"}),
        ("/models", {"ordering": "-description"}),
        ("/models", {"name__startswith": "r"}),
        ("/models", {"search": "x"}),
        ("/models/resnet/versions", {"order_by": "accuracy"}),
        ("/models/resnet/versions", {"model__name": "other"}),
        ("/deployments", {"deployed_by": "x"}),
        ("/audit", {"client_address": "1.2.3.4"}),
        ("/models", {"is_active": "maybe"}),
        ("/models/resnet/versions", {"is_default": "yes-please"}),
        ("/models/resnet/versions/v1", {"expand": "all"}),
    ],
)
def test_unknown_or_malformed_query_parameters_are_400(api, world, path, query):
    response = api.get(path, query)
    assert response.status_code == 400, (path, query, response.content[:200])
    assert next(iter(query)) in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/deployments?model=a%00b",
        "/deployments?target=a%00b",
        "/deployments?version=a%00b",
        "/audit?actor=a%00b",
        "/audit?model=a%00b",
        "/audit?action=a%00b",
        "/models?model_type=a%00b",
        "/models/resnet/versions?status=a%00b",
        "/audit?since=2020-01-01T00:00:00%00",
        "/models?cursor=%00",
    ],
)
def test_nul_bytes_in_query_parameters_are_refused_not_500(api, world, path):
    api.raise_request_exception = False
    response = api.get(path)
    # Refused, or harmless (an undecodable cursor means the first page), but never a 500.
    assert response.status_code in (200, 400, 404), (path, response.status_code)
    if "=a%00b" in path:
        assert response.status_code == 400, path


def test_page_size_is_capped_at_500(api, db):
    RegisteredModel.objects.bulk_create(RegisteredModel(name=f"m{i:04d}", model_type="audio") for i in range(520))
    response = api.get("/models", {"page_size": 100_000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 500
    assert response.json()["next"]
    assert len(api.get("/models", {"page_size": 3}).json()["results"]) == 3


@pytest.mark.parametrize("value", ["-1", "0", "abc", "1e9", "99999999999999999999999"])
def test_odd_page_sizes_never_fail_or_exceed_the_cap(api, world, value):
    response = api.get("/models", {"page_size": value})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert len(response.json()["results"]) <= 500


def test_a_forged_cursor_is_refused_or_harmless_never_a_500(api, world):
    for cursor in ("!!!", "cD0lMjcpJTNCRFJPUCUyMFRBQkxF", "bz0tMSZyPTEmcD14", "cD0" + "A" * 5000):
        assert api.get("/models", {"cursor": cursor}).status_code in (200, 404), cursor
    # "not-a-cursor" decodes to no position at all: the first page.
    assert api.get("/models", {"cursor": "bm90LWEtY3Vyc29y"}).json()["results"][0]["name"] == "resnet"


# --- Stored XSS and CSRF in the admin -------------------------------------------------------------------
XSS = '<script>alert("x")</script>'
XSS_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


def test_description_and_release_notes_are_escaped_in_the_admin(admin_client, api, world):
    assert api.patch("/models/resnet", {"description": XSS}, format="json").status_code == 200
    assert (
        api.patch(
            "/models/resnet/versions/v1", {"release_notes": XSS, "training_config": {"k": XSS}}, format="json"
        ).status_code
        == 200
    )
    version = ModelVersion.objects.get(model=world.model, version="v1")
    pages = [
        reverse("admin:models_app_registeredmodel_changelist"),
        reverse("admin:models_app_registeredmodel_change", args=[world.model.pk]),
        reverse("admin:models_app_modelversion_change", args=[version.pk]),
        reverse("admin:models_app_modelversion_changelist"),
    ]
    for page in pages:
        html = admin_client.get(page, {"q": XSS} if page.endswith("changelist/") else None).content.decode()
        assert "<script>alert" not in html, page
    model_page = admin_client.get(pages[1]).content.decode()
    assert XSS_ESCAPED in model_page
    version_page = admin_client.get(pages[2]).content.decode()
    assert "&lt;script&gt;" in version_page


def test_audit_and_deployment_text_is_escaped_in_the_admin(admin_client, api, world):
    # In local mode a client's deployed_by is kept: it is user text, shown in the admin.
    response = api.post(
        "/deploy",
        {"model_name": "resnet", "version": "v1", "deployment_target": "canary", "deployed_by": XSS},
        format="json",
    )
    assert response.status_code == 201
    deployment = response.json()["id"]
    api.post(f"/deployments/{deployment}/rollback", {"reason": XSS}, format="json")
    api.patch("/models/resnet", {"description": XSS}, format="json")
    event = AuditEvent.objects.filter(action="update").latest("id")
    pages = [
        reverse("admin:deployments_app_deployment_changelist"),
        reverse("admin:deployments_app_deployment_change", args=[deployment]),
        reverse("admin:registry_site_auditevent_changelist"),
        reverse("admin:registry_site_auditevent_change", args=[event.pk]),
        reverse("admin:models_app_modelversion_change", args=[ModelVersion.objects.get(version="v1").pk]),
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        assert "<script>alert" not in html, page
    assert "&lt;script&gt;" in admin_client.get(pages[3]).content.decode()


def test_admin_forms_keep_csrf(admin_user, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = snapshot_counts()
    posts = [
        (reverse("admin:models_app_registeredmodel_add"), {"name": "csrf_victim", "model_type": "audio"}),
        (reverse("admin:models_app_registeredmodel_delete", args=[world.model.pk]), {"post": "yes"}),
        (
            reverse("admin:models_app_modelversion_changelist"),
            {
                "action": "deploy_to_target",
                "_selected_action": [ModelVersion.objects.get(version="v1").pk],
                "apply": "1",
                "target": "production",
            },
        ),
        (reverse("admin:registry_site_apitoken_add"), {"user": admin_user.pk, "name": "stolen"}),
    ]
    for page, data in posts:
        assert client.post(page, data).status_code == 403, page
    assert snapshot_counts() == before
    # With the token from the form, the same post is accepted.
    form = client.get(reverse("admin:models_app_registeredmodel_add"))
    token = form.cookies["csrftoken"].value
    response = client.post(
        reverse("admin:models_app_registeredmodel_add"),
        {"name": "with_token", "model_type": "audio", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert RegisteredModel.objects.filter(name="with_token").exists()


def snapshot_counts() -> tuple:
    from registry_site.models import ApiToken

    return (
        RegisteredModel.objects.count(),
        ModelVersion.objects.count(),
        Deployment.objects.count(),
        AuditEvent.objects.count(),
        ApiToken.objects.count(),
    )


def test_the_api_does_not_accept_admin_session_cookies_as_credentials(admin_user, world, production):
    """CSRF protection of the API rests on it never trusting cookies: a browser logged in to the admin
    must not be able to write through the API in production from another site's form."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/models", {"name": "via_cookie", "model_type": "audio"})
    assert response.status_code in (401, 403)
    assert not RegisteredModel.objects.filter(name="via_cookie").exists()


@pytest.mark.parametrize("field", ["training_config", "deployment_config"])
@pytest.mark.parametrize("text", ["NaN", "Infinity", "1e400"])
def test_non_finite_numbers_in_admin_json_fields_are_form_errors(admin_client, world, field, text):
    admin_client.raise_request_exception = False
    before = snapshot_counts()
    response = admin_client.post(
        reverse("admin:models_app_modelversion_add"),
        {"model": world.model.pk, "version": "v9", "format": "onnx", "status": "training", field: '{"x": %s}' % text},
    )
    assert response.status_code == 200, response.status_code
    assert response.context["adminform"].form.errors[field]
    assert snapshot_counts() == before
