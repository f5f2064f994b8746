"""The file path, on the local folder and on S3 (moto's real HTTP server): what is stored where, what a
download sends, and that a refused or broken upload leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from models_app.models import Artifact, ModelVersion
from tests.conftest import sha256, staged_files, upload

pytestmark = pytest.mark.django_db

PAYLOAD = bytes(range(256)) * 64  # 16 KiB, every byte value


def key_of(data: bytes) -> str:
    digest = sha256(data)
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def post_version(api, model, version="v1", data=PAYLOAD, **form):
    form = {"version": version, "format": "onnx", **form}
    if data is not None:
        form["file"] = upload(data)
    return api.post(f"/models/{model.name}/versions", form, format="multipart")


def test_multipart_upload_is_stored_under_its_sha256(api, make_model, backend, storage_dir):
    response = post_version(api, make_model())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["checksum"] == sha256(PAYLOAD) and body["file_size"] == len(PAYLOAD)
    assert body["file_path"] == key_of(PAYLOAD)
    assert backend.keys() == [key_of(PAYLOAD)]
    assert backend.read(key_of(PAYLOAD)) == PAYLOAD
    assert staged_files(storage_dir) == []


def test_raw_put_is_stored_and_checked_against_content_digest(api, make_model, backend, storage_dir):
    model = make_model()
    assert post_version(api, model, data=None).status_code == 201
    digest = base64.b64encode(hashlib.sha256(PAYLOAD).digest()).decode()
    response = api.put(
        f"/models/{model.name}/versions/v1/file?filename=resnet.onnx",
        PAYLOAD,
        content_type="application/octet-stream",
        HTTP_CONTENT_DIGEST=f"sha-256=:{digest}:",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["checksum"] == sha256(PAYLOAD)
    assert response.json()["file_name"] == "resnet.onnx"
    assert backend.read(key_of(PAYLOAD)) == PAYLOAD
    assert staged_files(storage_dir) == []


def test_identical_files_are_stored_once(api, make_model, backend):
    assert post_version(api, make_model()).status_code == 201
    assert post_version(api, make_model()).status_code == 201
    assert backend.keys() == [key_of(PAYLOAD)]
    assert Artifact.objects.count() == 1
    assert ModelVersion.objects.filter(artifact_id=sha256(PAYLOAD)).count() == 2


@pytest.mark.parametrize("where", ["form", "header"])
def test_a_wrong_declared_digest_stores_nothing(api, make_model, backend, storage_dir, where):
    model = make_model()
    wrong = hashlib.sha256(b"something else")
    if where == "form":
        response = post_version(api, model, sha256=wrong.hexdigest())
    else:
        post_version(api, model, data=None)
        response = api.put(
            f"/models/{model.name}/versions/v1/file",
            PAYLOAD,
            content_type="application/octet-stream",
            HTTP_DIGEST=f"SHA-256={base64.b64encode(wrong.digest()).decode()}",
        )
    assert response.status_code == 400
    assert "sha256" in response.json()["errors"]
    assert backend.keys() == []
    assert staged_files(storage_dir) == []
    assert not Artifact.objects.exists()


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(api, make_model, backend, storage_dir, settings):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1000
    model = make_model()
    response = post_version(api, model, data=b"x" * 5000)
    assert response.status_code == 413
    assert backend.keys() == [] and staged_files(storage_dir) == []
    assert not ModelVersion.objects.exists()


def test_download_streams_whole_file_with_its_digest(api, make_version, backend):
    version = make_version(data=PAYLOAD)
    response = api.get(f"/models/{version.model.name}/versions/v1/file")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PAYLOAD
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert response["ETag"] == f'"{sha256(PAYLOAD)}"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'attachment; filename="model.onnx"'


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=10-19", 10, 19),
        ("bytes=16000-", 16000, len(PAYLOAD) - 1),
        ("bytes=-5", len(PAYLOAD) - 5, len(PAYLOAD) - 1),
        ("bytes=100-999999", 100, len(PAYLOAD) - 1),
    ],
)
def test_range_requests_get_206_with_exactly_those_bytes(api, make_version, backend, header, start, end):
    version = make_version(data=PAYLOAD)
    response = api.get(f"/models/{version.model.name}/versions/v1/file", HTTP_RANGE=header)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == PAYLOAD[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(PAYLOAD)}"
    assert response["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_range_is_416_and_stale_if_range_gets_the_whole_file(api, make_version, backend):
    version = make_version(data=PAYLOAD)
    url = f"/models/{version.model.name}/versions/v1/file"
    response = api.get(url, HTTP_RANGE=f"bytes={len(PAYLOAD)}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(PAYLOAD)}"
    response = api.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"not-the-etag"')
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PAYLOAD


def test_if_none_match_is_304(api, make_version, backend):
    version = make_version(data=PAYLOAD)
    response = api.get(f"/models/{version.model.name}/versions/v1/file", HTTP_IF_NONE_MATCH=f'"{sha256(PAYLOAD)}"')
    assert response.status_code == 304
    assert response["ETag"] == f'"{sha256(PAYLOAD)}"'


def test_s3_downloads_stream_the_object_body(api, make_version, settings, s3_endpoint, s3_bucket, monkeypatch):
    """django-storages' S3File copies the whole object into a temporary file on first read; the
    registry must never go through it."""
    from tests.s3 import s3_storage_settings

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket[0])}
    version = make_version(data=PAYLOAD)

    def refuse(*args, **kwargs):
        raise AssertionError("S3File would spool the whole object")

    monkeypatch.setattr("storages.backends.s3.S3File.__init__", refuse)
    response = api.get(f"/models/{version.model.name}/versions/v1/file", HTTP_RANGE="bytes=0-99")
    assert b"".join(response.streaming_content) == PAYLOAD[:100]


def test_s3_downloads_can_redirect_to_a_presigned_url(api, make_version, settings, s3_endpoint, s3_bucket):
    from tests.s3 import s3_storage_settings

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket[0])}
    settings.REGISTRY_S3_REDIRECT_DOWNLOADS = True
    version = make_version(data=PAYLOAD)
    response = api.get(f"/models/{version.model.name}/versions/v1/file")
    assert response.status_code == 302
    assert response["Location"].startswith(s3_endpoint)
    fetched = requests.get(response["Location"])
    assert fetched.status_code == 200 and fetched.content == PAYLOAD


def test_verify_finds_a_flipped_byte(make_version, backend, settings):
    version = make_version(data=PAYLOAD)
    call_command("verify_artifacts", stdout=StringIO())
    rotten = bytearray(PAYLOAD)
    rotten[1234] ^= 0xFF
    if backend.name == "local":
        Path(settings.STORAGES["default"]["OPTIONS"]["location"], version.file_path).write_bytes(bytes(rotten))
    else:
        backend.client.put_object(Bucket=backend.bucket, Key=f"models/{version.file_path}", Body=bytes(rotten))
    out = StringIO()
    with pytest.raises(CommandError, match="1 corrupted"):
        call_command("verify_artifacts", stdout=out)
    assert f"CORRUPTED {version.checksum}" in out.getvalue()


def test_gc_removes_unreferenced_files_and_abandoned_multipart_uploads(make_model, make_version, backend):
    from models_app import services

    model = make_model()
    make_version(model, "v1", data=b"kept")
    gone = make_version(model, "v2", data=b"collected")
    services.delete_version(version=gone)
    if backend.name == "s3":
        backend.client.create_multipart_upload(Bucket=backend.bucket, Key="models/sha256/zz/abandoned")
    out = StringIO()
    call_command("gc_artifacts", "--grace-hours", "0", stdout=out)
    assert backend.keys() == [key_of(b"kept")]
    if backend.name == "s3":
        assert "abandoned multipart upload models/sha256/zz/abandoned" in out.getvalue()
        assert backend.client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", []) == []


def test_multipart_upload_checks_a_content_digest_header(api, make_model, backend):
    model = make_model()
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "onnx", "file": upload(PAYLOAD)},
        format="multipart",
        HTTP_CONTENT_DIGEST=f"sha-256=:{wrong}:",
    )
    assert response.status_code == 400 and "sha256" in response.json()["errors"]
    assert backend.keys() == []
    right = base64.b64encode(hashlib.sha256(PAYLOAD).digest()).decode()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "onnx", "file": upload(PAYLOAD)},
        format="multipart",
        HTTP_CONTENT_DIGEST=f"sha-256=:{right}:",
    )
    assert response.status_code == 201
