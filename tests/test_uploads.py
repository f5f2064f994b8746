"""The hashing sink every upload goes through: digest, size, durability and clean-up on failure."""

import errno
import hashlib

import pytest

from models_app import uploads
from tests.conftest import staged_files, upload


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"".join(bytes([i]) * uploads.CHUNK_SIZE for i in range(6)) + b"tail")
    return path


def test_hashes_and_counts_while_writing(big_file, storage_dir):
    staged = uploads.receive_local_file(str(big_file))
    data = big_file.read_bytes()
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.size == len(data)
    with open(staged.temporary_file_path(), "rb") as handle:
        assert handle.read() == data
    staged.close()
    assert staged_files(storage_dir) == []


def test_a_failing_disk_is_reported_and_leaves_no_staged_file(big_file, storage_dir, monkeypatch):
    proxied = uploads.HashedUpload.write  # Django's File proxies write() to the open file
    calls = []

    def failing_write(self):
        real = proxied.fget(self)

        def write(chunk):
            calls.append(len(chunk))
            if len(calls) == 3:  # the disk fills up on the third chunk
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(chunk)

        return write

    monkeypatch.setattr(uploads.HashedUpload, "write", property(failing_write))
    with pytest.raises(OSError, match="No space left"):
        uploads.receive_local_file(str(big_file))
    assert staged_files(storage_dir) == []


@pytest.mark.django_db
def test_a_full_disk_is_a_507_with_nothing_stored(api, make_model, storage_dir, monkeypatch):
    def no_space(self, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads._HashingSink, "write", no_space)
    model = make_model()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "onnx", "file": upload(b"weights")},
        format="multipart",
    )
    assert response.status_code == 507
    assert "storage is full" in response.json()["detail"]
    assert not model.versions.exists()
    assert staged_files(storage_dir) == []
