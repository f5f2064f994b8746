"""Our sha256 handed to the store with every upload, and `verify_artifacts --fast` comparing what the
store keeps (small files; the large, multipart ones are in test_s3_large_objects)."""

from __future__ import annotations

import base64
import hashlib
from io import StringIO

import pytest
from botocore.exceptions import ClientError
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from models_app.uploads import receive_local_file
from tests.s3 import OWN_ENDPOINT, s3_storage_settings

pytestmark = [pytest.mark.s3, pytest.mark.django_db]

PAYLOAD = b"small weights " * 1000


@pytest.fixture
def on_s3(settings, s3_endpoint, s3_bucket):
    bucket, client = s3_bucket
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, bucket)}
    return client, bucket


def test_a_single_part_upload_carries_our_sha256(make_version, on_s3):
    client, bucket = on_s3
    version = make_version(data=PAYLOAD)
    head = client.head_object(Bucket=bucket, Key=f"models/{version.file_path}", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(PAYLOAD).digest()).decode()
    assert head["Metadata"]["sha256"] == version.checksum
    assert "1 files checked, 0 bytes read: 0 missing, 0 corrupted" in run("verify_artifacts", "--fast")


def test_fast_verify_catches_a_replaced_or_truncated_object(make_version, on_s3):
    client, bucket = on_s3
    version = make_version(data=PAYLOAD)
    key = f"models/{version.file_path}"
    client.put_object(Bucket=bucket, Key=key, Body=PAYLOAD[:-1], Metadata={"sha256": version.checksum})
    with pytest.raises(CommandError, match="1 corrupted"):
        run("verify_artifacts", "--fast")
    forged = bytes(reversed(PAYLOAD))  # same size, other bytes, under another sha256
    client.put_object(Bucket=bucket, Key=key, Body=forged, Metadata={"sha256": hashlib.sha256(forged).hexdigest()})
    with pytest.raises(CommandError, match="1 corrupted"):
        run("verify_artifacts", "--fast")


def test_fast_verify_needs_a_store_that_keeps_checksums(make_version):
    make_version(data=PAYLOAD)  # on the local folder
    with pytest.raises(CommandError, match="--fast needs a storage that keeps checksums"):
        run("verify_artifacts", "--fast")


@pytest.mark.skipif(not OWN_ENDPOINT, reason="moto keeps the checksum it is given without checking it")
def test_the_store_refuses_bytes_that_do_not_match_our_sha256(tmp_path, on_s3):
    source = tmp_path / "weights.bin"
    source.write_bytes(PAYLOAD)
    staged = receive_local_file(str(source))
    staged.sha256 = hashlib.sha256(b"what the client meant to send").hexdigest()  # the bytes were damaged
    with pytest.raises(ClientError):
        default_storage.store_upload(f"sha256/{staged.sha256}", staged)
    assert not default_storage.exists(f"sha256/{staged.sha256}")


def run(*args: str) -> str:
    out = StringIO()
    try:
        call_command(*args, stdout=out)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{out.getvalue()}") from None
    return out.getvalue()
