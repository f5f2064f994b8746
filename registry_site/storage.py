"""Where model files' bytes live: a local folder or an S3 bucket, each a Django Storage configured as
settings.STORAGES["default"], with the few operations the registry needs beyond Django's own API as
methods (ArtifactStorage below). The code that stores, serves, verifies and collects files
(models_app.artifacts, downloads, maintenance, the health check) calls these and never asks which of the
two it has; everything that differs between a folder and a bucket is in this module.

Keys are content addressed (the same key always holds the same bytes), so storing is idempotent and both
backends always keep the name they are given.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from storages.backends.s3 import S3Storage
from whitenoise.storage import CompressedManifestStaticFilesStorage


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


class ByteRange:
    """An open stored file positioned at `start`, that reads at most `length` bytes: what a download
    (or a Range request's slice of it) sends. A server that can use sendfile gets the descriptor."""

    def __init__(self, raw: BinaryIO, length: int, *, stored_size: int | None = None) -> None:
        self._raw = raw
        self.remaining = length
        # The size of the whole stored object as the storage reports it now, for the caller to compare
        # with its record (a file changed behind the registry's back); None if not known.
        self.stored_size = stored_size
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


class ArtifactStorage(Protocol):
    """What the registry asks of its storage, besides Django's exists() and delete()."""

    def store_upload(self, key: str, upload: TemporaryUploadedFile) -> None:
        """Store a finished upload's bytes durably under `key`; a key already stored is left alone."""

    def open_range(self, key: str, start: int, length: int) -> ByteRange:
        """The stored bytes [start, start + length), streamed, never copied whole."""

    def iter_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        """The whole stored file, chunk by chunk (integrity checks)."""

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every stored file under `prefix`, with its size and modification time."""

    def abort_stale_uploads(self, *, older_than: datetime, dry_run: bool) -> list[str]:
        """Abandoned partial uploads started before `older_than`, aborted unless `dry_run`."""

    def check_reachable(self) -> None:
        """Raise, saying why, if files cannot be stored now (the health check)."""

    def redirect_url(self, key: str, *, file_name: str) -> str | None:
        """Where a client may fetch the file directly, or None to stream it through the registry."""


def _check_kept(key: str, stored: str) -> None:
    if stored != key:  # a row is about to point at `key`
        raise RuntimeError(f"the storage renamed {key} to {stored}; content-addressed keys must be kept")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalArtifactStorage(FileSystemStorage):
    """A folder on the registry's own disk. Uploads are staged beside it (FILE_UPLOAD_TEMP_DIR on the
    same filesystem), so storing one is a hard link: atomic, and no byte is copied."""

    def __init__(self, *, allow_overwrite: bool = True, **kwargs) -> None:
        # Content-addressed keys: the same key always holds the same bytes, and must keep its name.
        super().__init__(allow_overwrite=True, **kwargs)

    def store_upload(self, key: str, upload: TemporaryUploadedFile) -> None:
        if self.exists(key):
            return
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            # A hard link, not a rename: as atomic and as cheap, and the staged copy stays until the
            # request ends, so a request can store its bytes again if a concurrent refusal removed them
            # before its row was written (models_app.services._link_artifact).
            os.link(upload.temporary_file_path(), path)
        except FileExistsError:
            return  # the same bytes, stored by a concurrent request
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise
            # Staged on another filesystem (or one without hard links): Django copies into place.
            _check_kept(key, self.save(key, upload))
        if settings.FILE_UPLOAD_PERMISSIONS is not None:
            os.chmod(path, settings.FILE_UPLOAD_PERMISSIONS)
        # The file was fsynced when its upload finished; fsyncing it again covers a copy, then its folder.
        _fsync(path)
        _fsync(os.path.dirname(path))

    def open_range(self, key: str, start: int, length: int) -> ByteRange:
        raw = open(self.path(key), "rb")  # closed by ByteRange.close()
        raw.seek(start)
        return ByteRange(raw, length, stored_size=os.fstat(raw.fileno()).st_size)

    def iter_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        with open(self.path(key), "rb") as raw:
            while chunk := raw.read(chunk_size):
                yield chunk

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        for folder, _, names in os.walk(self.path(prefix)):
            for name in names:
                path = os.path.join(folder, name)
                stat = os.stat(path)
                yield StoredObject(
                    os.path.relpath(path, self.location).replace(os.sep, "/"),
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                )

    def abort_stale_uploads(self, *, older_than: datetime, dry_run: bool) -> list[str]:
        return []  # a rename has no partial state; stale staged files are gc_artifacts' own business

    def check_reachable(self) -> None:
        os.makedirs(self.location, exist_ok=True)
        if not os.access(self.location, os.W_OK | os.X_OK):
            raise PermissionError(f"storage folder {self.location} is not writable")

    def redirect_url(self, key: str, *, file_name: str) -> str | None:
        return None  # served by the registry itself (sendfile)


class S3ArtifactStorage(S3Storage):
    """An S3 bucket (or MinIO, Ceph...) through django-storages. Uploads are staged on local disk and
    sent with boto3's managed transfer (a multipart upload, a part at a time); reads stream the object's
    body and never go through django-storages' S3File, which spools a whole object to a temporary file."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.file_overwrite = True  # content-addressed keys keep their name

    def _object(self, key: str):
        return self.bucket.Object(self._normalize_name(key))

    def store_upload(self, key: str, upload: TemporaryUploadedFile) -> None:
        if self.exists(key):
            return
        upload.seek(0)
        _check_kept(key, self.save(key, upload))

    def open_range(self, key: str, start: int, length: int) -> ByteRange:
        try:
            answer = self._object(key).get(Range=f"bytes={start}-{start + length - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from exc  # what the folder says for a missing file
            raise
        total = answer.get("ContentRange", "").rpartition("/")[2]  # "bytes 0-99/<size of the object>"
        return ByteRange(answer["Body"], length, stored_size=int(total) if total.isdigit() else None)

    def iter_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        body = self._object(key).get()["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        location = self.location.strip("/")
        for obj in self.bucket.objects.filter(Prefix=self._normalize_name(prefix + "/")):
            key = obj.key[len(location) + 1 :] if location else obj.key
            yield StoredObject(key, obj.size, obj.last_modified)

    def abort_stale_uploads(self, *, older_than: datetime, dry_run: bool) -> list[str]:
        aborted = []
        for upload in self.bucket.multipart_uploads.all():
            if upload.initiated < older_than:
                aborted.append(f"{upload.object_key} ({upload.id})")
                if not dry_run:
                    upload.abort()
        return aborted

    def check_reachable(self) -> None:
        self.exists("health-check")  # a HEAD request: fails if the bucket is unreachable

    def redirect_url(self, key: str, *, file_name: str) -> str | None:
        """A short-lived presigned URL (the registry steps out of the way), when so configured."""
        if not settings.REGISTRY_S3_REDIRECT_DOWNLOADS:
            return None
        return self.url(key, parameters={"ResponseContentDisposition": f'attachment; filename="{file_name}"'})


class RegistryStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The admin's and the docs page's static files: cache-busted and compressed (whitenoise) once
    `collectstatic` has written its manifest (make run, the Docker image); until then (tests, a fresh
    checkout, served from the apps' folders by WHITENOISE_USE_FINDERS) under their own names. Decided
    when the storage is first used, from the manifest itself, not by the settings."""

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: collectstatic has not run
            return name
        return super().stored_name(name)
