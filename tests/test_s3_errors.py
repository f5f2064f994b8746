"""The maintenance commands on a storage that fails: a store that cannot be reached is one clear line
and a non-zero exit, never a traceback; a file that cannot be read or removed is a line of the report,
and the other files are still checked."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.live import ROOT, free_port
from tests.s3 import s3_storage_settings


@pytest.fixture
def closed_port_store(settings):
    """S3 settings naming an endpoint where nothing listens."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(endpoint, "registry-nowhere")}
    return endpoint


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["verify_artifacts", "gc_artifacts"])
def test_an_unreachable_store_is_one_clear_error(closed_port_store, name):
    with pytest.raises(CommandError, match=r"^The artifact storage cannot be reached: Could not connect"):
        call_command(name, stdout=StringIO())


@pytest.mark.subprocess
def test_an_unreachable_store_exits_non_zero_without_a_traceback(tmp_path):
    env = {
        **os.environ,
        "REGISTRY_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REGISTRY_S3_BUCKET": "registry-nowhere",
        "REGISTRY_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for name in ("verify_artifacts", "gc_artifacts"):
        done = subprocess.run(
            [sys.executable, "manage.py", name], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("CommandError: The artifact storage cannot be reached: Could not connect")


@pytest.mark.django_db
def test_an_unreadable_local_file_is_reported_and_the_others_checked(make_version, storage_dir):
    good = make_version(version="v1", data=b"good")
    bad = make_version(version="v1", data=b"unreadable")
    path = storage_dir / bad.file_path
    path.unlink()
    path.mkdir()  # opening it fails (IsADirectoryError), as an unreadable file would, even for root
    out = StringIO()
    with pytest.raises(
        CommandError, match="2 files checked, 4 bytes read: 0 missing, 0 corrupted, 0 orphaned, 1 unreadable"
    ):
        call_command("verify_artifacts", stdout=out)
    assert f"UNREADABLE {bad.checksum}: Is a directory: " in out.getvalue()
    assert good.checksum not in out.getvalue()
