"""Where a model file's bytes are stored: under a key made from their sha256, in Django's default storage
(a local folder, or S3 through django-storages).

The key never comes from user input (model name, version or the client's file name), so no path trick
can reach the disk, and identical files are stored once. Bytes are moved here before the database row
that points to them is written (see services.register_version), and no transaction is open meanwhile.
Reading streams: a local file is handed to the server (sendfile), an S3 object's body is read chunk by
chunk; neither is ever copied whole into memory or a temporary file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

from django.core.files.storage import FileSystemStorage, default_storage

from models_app.uploads import HashedUpload

KEY_PREFIX = "sha256"


def storage_key_for(sha256: str) -> str:
    return f"{KEY_PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def is_local() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def put_file(upload: HashedUpload) -> str:
    """Store an upload's bytes under their content key and return the key. Idempotent: if the key is
    already there, it holds these very bytes."""
    key = storage_key_for(upload.sha256)
    if is_local():
        final_path = default_storage.path(key)
        if not os.path.exists(final_path):
            folder = os.path.dirname(final_path)
            os.makedirs(folder, exist_ok=True)
            # The temporary file is on the same filesystem (FILE_UPLOAD_TEMP_DIR), so this is a rename:
            # atomic, and no byte is copied. The temporary file was fsynced when the upload finished.
            os.replace(upload.temporary_file_path(), final_path)
            os.chmod(final_path, 0o640)
            _fsync_dir(folder)
    elif not default_storage.exists(key):
        upload.seek(0)
        # boto3's managed transfer: a multipart upload from the file on disk, a part at a time.
        default_storage.save(key, upload)
    return key


def exists(key: str) -> bool:
    return default_storage.exists(key)


def delete(key: str) -> None:
    default_storage.delete(key)


class ByteRange:
    """An open stored file positioned at `start`, that reads at most `length` bytes: what a download
    (or a Range request's slice of it) sends. A server that can use sendfile gets the descriptor."""

    def __init__(self, raw, length: int) -> None:
        self._raw = raw
        self.remaining = length
        if isinstance(raw, io.BufferedReader):
            # A local file: gunicorn sends it with sendfile from the current offset, bounded by
            # Content-Length. An S3 body has no descriptor and is read chunk by chunk.
            self.fileno = raw.fileno

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._raw.read(size)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self._raw.close()


def open_range(key: str, start: int, length: int) -> ByteRange:
    if is_local():
        raw = open(default_storage.path(key), "rb")
        raw.seek(start)
        return ByteRange(raw, length)
    obj = default_storage.bucket.Object(default_storage._normalize_name(key))
    body = obj.get(Range=f"bytes={start}-{start + length - 1}")["Body"]
    return ByteRange(body, length)


def read_chunks(key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """The whole stored file, chunk by chunk (integrity checks)."""
    if is_local():
        with open(default_storage.path(key), "rb") as raw:
            while chunk := raw.read(chunk_size):
                yield chunk
        return
    body = default_storage.bucket.Object(default_storage._normalize_name(key)).get()["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def presigned_url(key: str, *, file_name: str) -> str:
    """A short-lived URL to fetch the object from S3 directly (the registry steps out of the way)."""
    return default_storage.url(key, parameters={"ResponseContentDisposition": f'attachment; filename="{file_name}"'})
