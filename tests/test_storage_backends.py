"""registry_site.storage: the two artifact storages behind one seam. What differs between a folder and a
bucket is tested here; what a caller sees is the same on both (the `backend` fixture)."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from models_app.uploads import receive_local_file
from registry_site.checks import check_artifact_storage
from tests.conftest import sha256, staged_files


@pytest.fixture
def staged(tmp_path, storage_dir):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights " * 1000)
    upload = receive_local_file(str(source))
    yield upload
    upload.close()


def test_local_storage_links_the_staged_file_into_place(staged, storage_dir):
    staged_inode = os.stat(staged.temporary_file_path()).st_ino
    key = f"sha256/{staged.sha256}"

    default_storage.store_upload(key, staged)

    stored = storage_dir / key
    assert stored.read_bytes() == b"weights " * 1000
    assert stored.stat().st_ino == staged_inode, "a link, not a copy"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640  # FILE_UPLOAD_PERMISSIONS
    # The staged name stays until the upload is closed (a request can store it again), then goes.
    assert len(staged_files(storage_dir)) == 1
    staged.close()
    assert staged_files(storage_dir) == [] and stored.read_bytes() == b"weights " * 1000


def test_storing_a_key_twice_leaves_the_first_copy_alone(staged, storage_dir, tmp_path):
    key = f"sha256/{staged.sha256}"
    default_storage.store_upload(key, staged)
    first = (storage_dir / key).stat()
    source = tmp_path / "again.bin"
    source.write_bytes(b"weights " * 1000)
    again = receive_local_file(str(source))
    try:
        default_storage.store_upload(key, again)
    finally:
        again.close()
    assert (storage_dir / key).stat().st_ino == first.st_ino
    staged.close()
    assert staged_files(storage_dir) == []


def test_both_storages_offer_the_same_operations(backend, staged):
    key = f"sha256/{staged.sha256}"
    default_storage.store_upload(key, staged)
    data = b"weights " * 1000
    assert backend.read(key) == data
    assert [(o.key, o.size) for o in default_storage.list_objects("sha256")] == [(key, len(data))]
    ranged = default_storage.open_range(key, 8, 16)
    try:
        assert ranged.read() == data[8:24]
    finally:
        ranged.close()
    assert b"".join(default_storage.iter_chunks(key, 1000)) == data
    assert sha256(b"".join(default_storage.iter_chunks(key, 1000))) == staged.sha256
    default_storage.check_reachable()
    assert default_storage.abort_stale_uploads(older_than=timezone.now() - timedelta(hours=1), dry_run=True) == []


def test_the_system_check_refuses_a_storage_without_the_registrys_operations(settings, tmp_path):
    assert check_artifact_storage(None) == []
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    [error] = check_artifact_storage(None)
    assert error.id == "registry_site.E001" and "store_upload" in error.msg
