"""manage.py "migrate_storage" (issue #13 §3): every file copied to S3 (and back to a folder), each copy
read back and checked, resumable after an interruption, and nothing switched by the command itself."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from models_app import backup
from models_app.maintenance import verify_artifacts
from tests.s3 import s3_storage_settings

pytestmark = [pytest.mark.s3, pytest.mark.django_db]

FILES = {"v1": b"one" * 1000, "v2": b"two" * 2000, "v3": b"three" * 3000}


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def registry(make_model, make_version):
    model = make_model(name="resnet")
    for version, data in FILES.items():
        make_version(model, version, data=data)


@pytest.fixture
def s3(settings, s3_endpoint, s3_bucket):
    bucket, client = s3_bucket
    settings.REGISTRY_S3_ENDPOINT_URL = s3_endpoint
    settings.REGISTRY_S3_REGION = "us-east-1"
    return s3_endpoint, bucket, client


def downloads(api) -> dict[str, bytes]:
    return {v: b"".join(api.get(f"/models/resnet/versions/{v}/file").streaming_content) for v in FILES}


def test_to_s3_then_switch_then_back_to_a_folder(registry, s3, settings, api, tmp_path):
    endpoint, bucket, client = s3
    out = run("migrate_storage", "--to", f"s3://{bucket}/models")
    assert "3 files: 3 copied (24000 bytes), 0 already there, 0 failed" in out
    assert downloads(api) == FILES  # nothing switched: still served from the folder

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(endpoint, bucket, prefix="models")}
    assert downloads(api) == FILES  # the operator's switch: the same keys, now in the bucket
    assert verify_artifacts().ok
    fast = run("verify_artifacts", "--fast")  # the copies carry our sha256, as uploads to S3 do
    assert "3 files checked" in fast and "UNVERIFIED" not in fast, fast

    folder = tmp_path / "back"
    assert "3 copied" in run("migrate_storage", "--to", str(folder))
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "registry_site.storage.LocalArtifactStorage", "OPTIONS": {"location": str(folder)}},
    }
    assert downloads(api) == FILES
    assert verify_artifacts().ok


def test_an_interrupted_move_resumes_and_replaces_a_damaged_copy(registry, s3, monkeypatch):
    _, bucket, client = s3
    copy = backup._store_verified
    calls = []
    interrupting = [True]

    def interrupted(*args, **kwargs):
        if len(calls) == 2 and interrupting:
            raise KeyboardInterrupt  # the operator's ^C, or the process killed
        calls.append(args)
        return copy(*args, **kwargs)

    monkeypatch.setattr(backup, "_store_verified", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("migrate_storage", "--to", f"s3://{bucket}/models")
    interrupting.clear()
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 2
    client.put_object(
        Bucket=bucket, Key=keys[0], Body=b"x" * client.head_object(Bucket=bucket, Key=keys[0])["ContentLength"]
    )

    out = run("migrate_storage", "--to", f"s3://{bucket}/models")
    assert "3 files: 2 copied" in out and "1 already there, 0 failed" in out
    for key in keys + [k["Key"] for k in client.list_objects_v2(Bucket=bucket)["Contents"]]:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert backup.hashlib.sha256(body).hexdigest() == key.rsplit("/", 1)[1]


def test_a_damaged_source_file_is_reported_and_nothing_is_switched(registry, s3, storage_dir):
    _, bucket, _ = s3
    [damaged] = [p for p in storage_dir.rglob("*") if p.is_file() and p.read_bytes() == FILES["v2"]]
    damaged.write_bytes(b"z" * len(FILES["v2"]))
    with pytest.raises(CommandError, match="1 failed.*Nothing is switched"):
        run("migrate_storage", "--to", f"s3://{bucket}/models")
