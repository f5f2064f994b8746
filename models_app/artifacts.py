"""Where a model file's bytes are stored: under a key made from their sha256, in Django's default storage
(a local folder, or S3 through django-storages).

The key never comes from user input (model name, version or the client's file name), so no path trick
can reach the disk, and identical files are stored once. Bytes are moved here before the database row
that points to them is written (see services.register_version), and no transaction is open meanwhile.
"""
from __future__ import annotations

import os

from django.core.files.storage import FileSystemStorage, default_storage

from models_app.uploads import HashedUpload


def storage_key_for(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


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
    if isinstance(default_storage, FileSystemStorage):
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
        default_storage.save(key, upload)
    return key


def open_file(key: str):
    return default_storage.open(key, "rb")
