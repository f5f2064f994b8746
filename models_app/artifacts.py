"""Where a model file's bytes are stored: under a key made from their sha256, in the artifact storage
(settings.STORAGES["default"]: a local folder or an S3 bucket, see registry_site.storage).

The key never comes from user input (model name, version or the client's file name), so no path trick
can reach the disk, and identical files are stored once. Bytes are moved here before the database row
that points to them is written (see services.register_version), and no transaction is open meanwhile.
Reading streams: a local file is handed to the server (sendfile), an S3 object's body is read chunk by
chunk; neither is ever copied whole into memory or a temporary file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import cast

from django.core.files.storage import default_storage
from django.db import connection

from models_app.uploads import HashedUpload
from registry_site.storage import ArtifactStorage, ByteRange, StoredObject

KEY_PREFIX = "sha256"
CHUNK_SIZE = 1024 * 1024
storage = cast(ArtifactStorage, default_storage)  # a lazy proxy to the configured one


def storage_key_for(sha256: str) -> str:
    return f"{KEY_PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def lock_content(sha256: str) -> None:
    """Inside a transaction: make every other transaction that stores, links or removes these bytes
    wait until this one ends. Storing happens outside any transaction (a large file takes minutes), so
    the row that claims stored bytes and the clean-up that removes unclaimed ones must agree on who is
    first; this lock is how. PostgreSQL: an advisory lock on the digest, released at commit or rollback.
    SQLite: a write transaction (IMMEDIATE, see settings) already excludes every other writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # 60 bits of the digest: a signed bigint key, unique enough that two files sharing a lock is
            # a collision no one will see, and harmless if seen (one waits for the other).
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int(sha256[:15], 16)])


def put_file(upload: HashedUpload) -> str:
    """Store an upload's bytes under their content key and return the key. Idempotent: if the key is
    already there, it holds these very bytes."""
    key = storage_key_for(upload.sha256)
    storage.store_upload(key, upload)
    return key


def exists(key: str) -> bool:
    return default_storage.exists(key)


def delete(key: str) -> None:
    default_storage.delete(key)


def open_range(key: str, start: int, length: int) -> ByteRange:
    return storage.open_range(key, start, length)


def read_chunks(key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The whole stored file, chunk by chunk (integrity checks)."""
    return storage.iter_chunks(key, chunk_size)


def stored_objects() -> Iterator[StoredObject]:
    """Every file under the content-addressed prefix of the storage."""
    return storage.list_objects(KEY_PREFIX)


def abort_stale_uploads(*, older_than: datetime, dry_run: bool) -> list[str]:
    return storage.abort_stale_uploads(older_than=older_than, dry_run=dry_run)


def redirect_url(key: str, *, file_name: str) -> str | None:
    """Where the client may fetch the file directly (a presigned S3 URL), or None to stream it."""
    return storage.redirect_url(key, file_name=file_name)
