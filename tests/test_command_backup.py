"""manage.py "backup" and "restore" (issue #13 §2): a registry backed up, wiped and restored answers every
listing as before, its files verify, and a backup taken under writes is consistent."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from io import StringIO

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from models_app.backup import REGISTRY_TABLES, destination, file_key, read_database, snapshots, truncate
from models_app.maintenance import verify_artifacts
from tests.conftest import deployed, production_mode, token_client, user_with_role
from tests.live import ROOT, running_registry


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def filled(api, make_model, make_version):
    """Models, versions with and without files, deployments and a rollback, a token, audit events."""
    resnet = make_model(name="resnet", description="image classifier")
    make_version(resnet, "v1", data=b"one" * 1000)
    make_version(resnet, "v2", data=b"two" * 1000, accuracy=0.93, training_config='{"lr": 0.1}')
    make_version(resnet, "v3", data=None)
    bert = make_model(name="bert", model_type="audio")
    make_version(bert, "1.0.0", data=b"one" * 1000)  # the same bytes as resnet v1: one stored file
    deployed(api, "resnet", "v1", "staging")
    rolled = deployed(api, "resnet", "v2", "production")
    api.post(f"/deployments/{rolled['id']}/rollback", {"reason": "latency"}, format="json")
    deployed(api, "bert", "1.0.0", "production")
    user = user_with_role("ci-bot", "admin")
    client = token_client(user)
    return client


def listings(client: APIClient) -> dict:
    """Every API listing, page by page."""
    pages = {}
    for path in ("/models", "/models/resnet/versions", "/models/bert/versions", "/deployments", "/audit"):
        results, url = [], path
        while url:
            body = client.get(url, {"page_size": 2} if url == path else None).json()
            assert "results" in body, (url, body)
            results += body["results"]
            url = body["next"]
        pages[path] = results
    return pages


def wipe(storage_dir) -> None:
    """A new, empty registry, as `migrate` leaves it (roles and permissions, no users, no rows), and no
    stored file."""
    tables = [model._meta.db_table for model in (*REGISTRY_TABLES, User)]
    tables += [User.groups.through._meta.db_table, User.user_permissions.through._meta.db_table]
    truncate(tables)
    shutil.rmtree(storage_dir)
    (storage_dir / ".incoming").mkdir(parents=True)


@pytest.mark.django_db
def test_backup_wipe_restore_gives_back_the_same_registry(filled, settings, storage_dir, tmp_path):
    production_mode(settings)
    token_holder = filled
    before = listings(token_holder)

    out = run("backup", str(tmp_path / "backup"))
    assert "2 files, 2 copied" in out and "0 already in the backup" in out
    wipe(storage_dir)
    assert token_holder.get("/models").status_code == 401  # the token is gone with the rows

    out = run("restore", str(tmp_path / "backup"))
    assert "2 files, 2 copied" in out
    assert listings(token_holder) == before  # the token works again, and every listing is the same
    report = verify_artifacts()
    assert report.ok and report.checked == 2
    assert b"".join(token_holder.get("/models/resnet/versions/v1/file").streaming_content) == b"one" * 1000


@pytest.mark.django_db
def test_a_second_backup_copies_only_new_files(filled, make_version, tmp_path):
    target = tmp_path / "backup"
    run("backup", str(target))
    make_version(None, "v9", data=b"new bytes")
    out = run("backup", str(target))
    assert "3 files, 1 copied (9 bytes), 2 already in the backup" in out
    assert len(snapshots(destination(str(target)))) == 2


@pytest.mark.django_db
def test_a_damaged_stored_file_fails_the_backup_and_leaves_no_snapshot(filled, storage_dir, tmp_path):
    [damaged] = [p for p in storage_dir.rglob("*") if p.is_file() and p.read_bytes() == b"two" * 1000]
    damaged.write_bytes(b"t" * 3000)
    with pytest.raises(CommandError, match="hashes to"):
        run("backup", str(tmp_path / "backup"))
    assert snapshots(destination(str(tmp_path / "backup"))) == []


@pytest.mark.s3
@pytest.mark.django_db
def test_backup_to_s3_and_restore_from_it(filled, settings, s3_endpoint, s3_bucket, storage_dir, api):
    bucket, client = s3_bucket
    settings.REGISTRY_S3_ENDPOINT_URL = s3_endpoint
    settings.REGISTRY_S3_REGION = "us-east-1"
    before = listings(api)
    run("backup", f"s3://{bucket}/registry-backups")
    keys = {obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"registry-backups/{file_key(obj)}" for obj in _shas(storage_dir)} <= keys
    wipe(storage_dir)
    run("restore", f"s3://{bucket}/registry-backups")
    assert listings(api) == before
    assert verify_artifacts().ok


def _shas(storage_dir) -> list[str]:
    return [p.name for p in storage_dir.rglob("*") if p.is_file() and ".incoming" not in p.parts]


@pytest.mark.gunicorn
def test_a_backup_taken_under_writes_is_consistent_and_restores_elsewhere(tmp_path):
    """Writers register versions with files and deploy them through gunicorn while `manage.py backup` runs
    three times: in every snapshot each deployment's version, each version's file row and each file's
    bytes are there too. The last snapshot then restores into a new SQLite registry that verifies clean."""
    server_env: dict[str, str] = {}
    target = tmp_path / "backup"
    with running_registry(tmp_path / "live", workers=2, setup=server_env.update) as base:
        assert requests.post(f"{base}/models", json={"name": "busy", "model_type": "audio"}).status_code == 201
        for worker in range(2):  # the writers' targets
            assert requests.post(f"{base}/targets", json={"name": f"t{worker}"}).status_code == 201
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer(worker: int) -> None:
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    version = f"w{worker}-{n}"
                    created = requests.post(
                        f"{base}/models/busy/versions",
                        data={"version": version, "format": "onnx"},
                        files={"file": ("m.onnx", version.encode() * 1000)},
                    )
                    assert created.status_code == 201, created.text
                    body = {"model_name": "busy", "version": version, "deployment_target": f"t{worker}"}
                    assert requests.post(f"{base}/deploy", json=body).status_code == 201
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(2)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(3):
                manage(server_env, "backup", str(target))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert not errors, errors
        live_versions = requests.get(f"{base}/models/busy/versions", params={"page_size": 1}).status_code
        assert live_versions == 200

    backup_store = destination(str(target))
    finished = snapshots(backup_store)
    assert len(finished) == 3
    for snapshot in finished:
        rows = read_database(backup_store, snapshot)
        versions = {r["pk"]: r["fields"] for r in rows if r["model"] == "models_app.modelversion"}
        files = {r["pk"] for r in rows if r["model"] == "models_app.artifact"}
        deployments = [r["fields"] for r in rows if r["model"] == "deployments_app.deployment"]
        assert versions and deployments
        assert {d["model_version"] for d in deployments} <= set(versions)
        assert {v["artifact"] for v in versions.values()} <= files
        assert all(backup_store.exists(file_key(sha)) for sha in files)

    elsewhere = {
        **server_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}",
        "REGISTRY_STORAGE_DIR": str(tmp_path / "elsewhere-storage"),
        "REGISTRY_DATA_DIR": str(tmp_path / "elsewhere-data"),
    }
    manage(elsewhere, "migrate", "--noinput", "-v0")
    restored = manage(elsewhere, "restore", str(target))
    assert f"restored snapshot {finished[-1]}" in restored
    assert "0 missing, 0 corrupted, 0 orphaned" in manage(elsewhere, "verify_artifacts")


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
