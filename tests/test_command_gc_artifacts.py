import os
import time
from io import StringIO

import pytest
from django.core.management import call_command

from models_app import services
from models_app.models import Artifact
from tests.command_support import assert_argument_error
from tests.conftest import stored_files


def gc(*args):
    out = StringIO()
    call_command("gc_artifacts", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_removes_files_of_deleted_versions_after_the_grace_period(make_model, make_version, storage_dir):
    model = make_model()
    make_version(model, "v1", data=b"keep")
    doomed = make_version(model, "v2", data=b"delete me")
    services.delete_version(version=doomed)
    assert len(stored_files(storage_dir)) == 2

    assert "Removed 0 files" in gc()  # younger than the default 24 h grace
    assert len(stored_files(storage_dir)) == 2

    output = gc("--grace-hours", "0", "--dry-run")
    assert f"Would remove unreferenced file {doomed.checksum}" in output
    assert len(stored_files(storage_dir)) == 2

    output = gc("--grace-hours", "0")
    assert f"Removed unreferenced file {doomed.checksum}" in output
    assert [p.name for p in stored_files(storage_dir)] == [Artifact.objects.get().sha256]
    assert not Artifact.objects.filter(pk=doomed.checksum).exists()


@pytest.mark.django_db
def test_a_file_shared_by_versions_stays_while_one_uses_it(make_model, make_version, storage_dir):
    first = make_model()
    make_version(first, "v1", data=b"other bytes")
    shared = make_version(first, "v2", data=b"same bytes")
    keeper = make_version(make_model(), "v1", data=b"same bytes")
    assert shared.checksum == keeper.checksum and len(stored_files(storage_dir)) == 2
    services.delete_version(version=shared)
    assert "Removed 0 files" in gc("--grace-hours", "0")
    assert (storage_dir / keeper.file_path).read_bytes() == b"same bytes"


@pytest.mark.django_db
def test_orphans_and_stale_temporary_uploads(storage_dir):
    orphan = storage_dir / "sha256" / "ab" / "cd" / ("abcd" * 16)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"crash leftover")
    stale = storage_dir / ".incoming" / "tmp123.upload"
    stale.write_bytes(b"half an upload")
    fresh = storage_dir / ".incoming" / "tmp456.upload"
    fresh.write_bytes(b"in flight")
    hour_ago = time.time() - 3600
    for path in (orphan, stale):
        os.utime(path, (hour_ago, hour_ago))

    output = gc("--grace-hours", "0.5")
    assert f"Removed orphaned file sha256/ab/cd/{'abcd' * 16}" in output
    assert "Removed stale temporary upload tmp123.upload" in output
    assert not orphan.exists() and not stale.exists()
    assert fresh.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        (["--grace-hours", "a-day"], "invalid float value: 'a-day'"),
        (["--grace-hours", "-1"], "--grace-hours cannot be negative"),
        (["now"], "unrecognized arguments: now"),
        (["--version"], "unrecognized arguments: --version"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    assert_argument_error("gc_artifacts", args, match)
