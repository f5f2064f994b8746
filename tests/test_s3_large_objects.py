"""Files larger than the multipart threshold on a real S3 endpoint (moto's loopback server, or the store
named by REGISTRY_TEST_S3_ENDPOINT: see tests/s3.py): both upload doors, whole and ranged downloads, the
presigned redirect followed by a real HTTP client, and the maintenance commands on what was stored.

The bytes are made once for the module and the bucket is shared; each test stores under its own prefix,
so one test's objects are never another's orphans."""

from __future__ import annotations

import hashlib
import os
import uuid
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from tests.conftest import upload
from tests.s3 import create_bucket, remove_bucket, s3_client, s3_storage_settings

pytestmark = [pytest.mark.s3, pytest.mark.django_db]

MiB = 1024 * 1024
PART = 64 * MiB  # the registry's default part size, which is also its multipart threshold
SIZE = PART + 16 * MiB  # two parts


@pytest.fixture(scope="module")
def big():
    """Two different files above the multipart threshold."""
    return os.urandom(SIZE), os.urandom(SIZE)


@pytest.fixture(scope="module")
def shared_bucket(s3_endpoint):
    client = s3_client(s3_endpoint)
    bucket = create_bucket(client)
    yield bucket, client
    remove_bucket(client, bucket)


@pytest.fixture
def s3(settings, s3_endpoint, shared_bucket):
    """The registry on the shared bucket, under a prefix of this test's own."""
    bucket, client = shared_bucket
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, bucket, prefix)}
    return client, bucket, prefix


def stored_key(prefix: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"{prefix}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def post_version(api, model_name: str, version: str, data: bytes | None):
    form = {"version": version, "format": "onnx"}
    if data is not None:
        form["file"] = upload(data)
    response = api.post(f"/models/{model_name}/versions", form, format="multipart")
    assert response.status_code == 201, response.content[:500]


def command(name: str, *args: str) -> str:
    out = StringIO()
    try:
        call_command(name, *args, stdout=out)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{out.getvalue()}") from None
    return out.getvalue()


def test_both_doors_store_multipart_objects_with_our_checksums(api, make_model, s3, big):
    client, bucket, prefix = s3
    model = make_model()
    post_version(api, model.name, "v1", big[0])
    post_version(api, model.name, "v2", None)
    response = api.put(
        f"/models/{model.name}/versions/v2/file?filename=model.onnx",
        big[1],
        content_type="application/octet-stream",
    )
    assert response.status_code in (200, 201), response.content[:500]
    for data in big:
        head = client.head_object(Bucket=bucket, Key=stored_key(prefix, data), ChecksumMode="ENABLED")
        assert head["ContentLength"] == SIZE
        assert head["ETag"].endswith('-2"')  # went up in two parts...
        assert head["ChecksumSHA256"]  # ...each with its SHA-256, which the store kept
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_whole_ranged_and_redirected_downloads(api, make_model, s3, big, settings):
    model = make_model()
    post_version(api, model.name, "v1", big[0])
    url = f"/models/{model.name}/versions/v1/file"

    whole = api.get(url)
    assert whole.status_code == 200
    assert hashlib.sha256(b"".join(whole.streaming_content)).digest() == hashlib.sha256(big[0]).digest()

    across_parts = f"bytes={PART - 1000}-{PART + 999}"  # a slice spanning the two parts
    ranged = api.get(url, HTTP_RANGE=across_parts)
    assert ranged.status_code == 206
    assert b"".join(ranged.streaming_content) == big[0][PART - 1000 : PART + 1000]

    settings.REGISTRY_S3_REDIRECT_DOWNLOADS = True
    redirect = api.get(url)
    assert redirect.status_code == 302
    fetched = requests.get(redirect["Location"], timeout=60)
    assert fetched.status_code == 200 and fetched.content == big[0]
    tail = requests.get(redirect["Location"], headers={"Range": f"bytes={SIZE - 100}-"}, timeout=60)
    assert tail.status_code == 206 and tail.content == big[0][-100:]


def test_verify_reads_multipart_objects_and_catches_one_replaced_behind_its_back(api, make_model, s3, big):
    """The FlexibleChecksumError the issue met: botocore's default (when_supported) validated the
    store's composite checksum of a multipart object as if it were the whole object's."""
    client, bucket, prefix = s3
    post_version(api, make_model().name, "v1", big[0])

    assert f"1 files checked, {SIZE} bytes read: 0 missing, 0 corrupted, 0 orphaned" in command("verify_artifacts")
    assert "1 files checked, 0 bytes read: 0 missing, 0 corrupted, 0 orphaned" in command("verify_artifacts", "--fast")

    rotten = bytearray(big[0])
    rotten[PART + 5] ^= 0xFF  # in the second part
    client.put_object(Bucket=bucket, Key=stored_key(prefix, big[0]), Body=bytes(rotten))

    out = StringIO()
    with pytest.raises(CommandError, match="1 corrupted"):
        call_command("verify_artifacts", stdout=out)
    assert (
        f"CORRUPTED {hashlib.sha256(big[0]).hexdigest()}: content hashes to {hashlib.sha256(rotten).hexdigest()}"
        in (out.getvalue())
    )
    out = StringIO()
    with pytest.raises(CommandError, match="1 unverified"):  # no sha256 of ours came with the new bytes
        call_command("verify_artifacts", "--fast", stdout=out)
    assert "UNVERIFIED" in out.getvalue()


def test_gc_and_usage_on_large_objects(api, make_model, s3, big):
    client, bucket, prefix = s3
    model = make_model()
    post_version(api, model.name, "v1", big[0])
    post_version(api, model.name, "v2", big[0])  # the same file: stored and counted once
    orphan = stored_key(prefix, big[1])
    client.put_object(Bucket=bucket, Key=orphan, Body=big[1])
    abandoned = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/sha256/ab/cd/abandoned")

    usage = command("storage_usage")
    assert f"{model.name}  {1:>7}  {SIZE:>15}" in usage

    collected = command("gc_artifacts", "--grace-hours", "0")
    assert f"Removed orphaned file {orphan.removeprefix(prefix + '/')}" in collected
    assert abandoned["UploadId"] in collected
    assert f"{SIZE} bytes" in collected
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert keys == [stored_key(prefix, big[0])]
    assert "0 orphaned" in command("verify_artifacts")
