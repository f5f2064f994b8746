"""Where model files' bytes live: a local folder or an S3 bucket, each a Django Storage configured as
settings.STORAGES["default"], with the few operations the registry needs beyond Django's own API as
methods (ArtifactStorage below). The code that stores, serves, verifies and collects files
(models_app.artifacts, downloads, maintenance, the health check) calls these and never asks which of the
two it has; everything that differs between a folder and a bucket is in this module.

Keys are content addressed (the same key always holds the same bytes), so storing is idempotent and both
backends always keep the name they are given.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from storages.backends.s3 import S3Storage
from whitenoise.storage import CompressedManifestStaticFilesStorage


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


# What a storage raises when a file cannot be read, written or listed: a disk's OSError (a missing or
# unreadable file, a full disk) or S3's (botocore: an unreachable endpoint, a refused request). The
# maintenance commands report these per file, or as one line for a store they cannot reach at all.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)


def describe_storage_error(exc: BaseException) -> str:
    """One line saying what went wrong, without a traceback."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message') or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class StoredChecksum:
    """What a store says about an object without reading it (a HEAD): its size, the sha256 the registry
    recorded beside it when storing it, and the store's own SHA-256 of the whole object when it keeps one
    (a single-part upload; a multipart upload's is a checksum of the parts' checksums)."""

    size: int
    recorded_sha256: str | None
    store_sha256: str | None


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

    def stored_checksum(self, key: str) -> StoredChecksum | None:
        """The checksums the store keeps for `key`, read without reading the file; None when this
        storage keeps none (the local folder), so only a full read can check it."""

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

    def stored_checksum(self, key: str) -> StoredChecksum | None:
        return None  # a file on disk keeps no checksum; verify_artifacts reads it whole

    def abort_stale_uploads(self, *, older_than: datetime, dry_run: bool) -> list[str]:
        return []  # a rename has no partial state; stale staged files are gc_artifacts' own business

    def check_reachable(self) -> None:
        os.makedirs(self.location, exist_ok=True)
        if not os.access(self.location, os.W_OK | os.X_OK):
            raise PermissionError(f"storage folder {self.location} is not writable")

    def redirect_url(self, key: str, *, file_name: str) -> str | None:
        return None  # served by the registry itself (sendfile)


class S3ArtifactStorage(S3Storage):
    """An S3 bucket (or MinIO, Ceph RGW, R2...) through django-storages. Uploads are staged on local disk
    and sent with the sha256 the upload handler computed: a small file in one PUT carrying it as
    ChecksumSHA256, a large one as a multipart upload with each part's SHA-256 (boto3's managed
    transfer, `part_size` and `concurrency` chosen by bench/s3_transfer.py), so a store that checks
    checksums refuses bytes damaged on the way. Our sha256 is also kept in the object's metadata
    (x-amz-meta-sha256), which `verify_artifacts --fast` compares with a HEAD. Reads stream the object's
    body and never go through django-storages' S3File, which spools a whole object to a temporary file."""

    METADATA_KEY = "sha256"  # x-amz-meta-sha256

    CHECKSUM_MODES = ("when_required", "when_supported")

    def __init__(
        self,
        *,
        checksums: str = "when_required",
        part_size: int = 64 * 1024**2,
        concurrency: int = 8,
        multipart_threshold: int | None = None,
        **kwargs,
    ) -> None:
        if checksums not in self.CHECKSUM_MODES:
            raise ImproperlyConfigured(
                f"S3 checksums must be one of {', '.join(self.CHECKSUM_MODES)}, got {checksums!r}"
            )
        if kwargs.get("client_config") is None:
            # botocore (since 1.36) adds a CRC32 to every request and validates the one a response
            # carries ("when_supported"). Stores disagree with it: some answer a multipart object's
            # composite CRC as if it were the whole object's (FlexibleChecksumError on every read of a
            # large file), older ones refuse the trailing checksum. "when_required" leaves both to the
            # operations that need them; our own SHA-256 is sent explicitly either way (store_upload).
            kwargs["client_config"] = Config(
                s3={"addressing_style": kwargs.get("addressing_style") or "auto"},
                signature_version=kwargs.get("signature_version") or "s3v4",
                proxies=kwargs.get("proxies"),
                request_checksum_calculation=checksums,
                response_checksum_validation=checksums,
                retries={"mode": "standard", "max_attempts": 3},
            )
        super().__init__(**kwargs)
        self.file_overwrite = True  # content-addressed keys keep their name
        self.upload_config = TransferConfig(
            multipart_threshold=multipart_threshold or part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            use_threads=concurrency > 1,
        )

    def _object(self, key: str):
        return self.bucket.Object(self._normalize_name(key))

    def store_upload(self, key: str, upload: TemporaryUploadedFile) -> None:
        if self.exists(key):
            return
        sha256: str = upload.sha256  # type: ignore[attr-defined]  # models_app.uploads.HashedUpload
        params = {
            "ContentType": "application/octet-stream",
            "Metadata": {self.METADATA_KEY: sha256},
        }
        upload.seek(0)
        if upload.size < self.upload_config.multipart_threshold:
            # One request carrying our digest: the store computes its own and refuses a mismatch.
            self._object(key).put(Body=upload, ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64(sha256), **params)
        else:
            # The managed transfer sends each part with its SHA-256, checked by the store part by part.
            # Given the staged file's path (not the open file), it streams each part from disk instead
            # of reading `concurrency` whole parts into memory.
            self.connection.meta.client.upload_file(
                upload.temporary_file_path(),
                self.bucket_name,
                self._normalize_name(key),
                ExtraArgs={**params, "ChecksumAlgorithm": "SHA256"},
                Config=self.upload_config,
            )

    def stored_checksum(self, key: str) -> StoredChecksum | None:
        head = self.connection.meta.client.head_object(
            Bucket=self.bucket_name, Key=self._normalize_name(key), ChecksumMode="ENABLED"
        )
        store_sha256 = None
        # A single-part object's ETag has no "-<parts>" suffix, and only then is its ChecksumSHA256 the
        # digest of the whole object (a multipart one's is composite, and some stores omit the suffix
        # that would say so on the checksum itself).
        if head.get("ChecksumSHA256") and "-" not in head.get("ETag", ""):
            store_sha256 = _hex(head["ChecksumSHA256"])
        return StoredChecksum(head["ContentLength"], head.get("Metadata", {}).get(self.METADATA_KEY), store_sha256)

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
        # A HEAD of the bucket: fails if the endpoint cannot be reached, the credentials are refused or
        # the bucket does not exist (a HEAD of a missing key would say none of this).
        self.connection.meta.client.head_bucket(Bucket=self.bucket_name)

    def redirect_url(self, key: str, *, file_name: str) -> str | None:
        """A short-lived presigned URL (the registry steps out of the way), when so configured."""
        if not settings.REGISTRY_S3_REDIRECT_DOWNLOADS:
            return None
        return self.url(key, parameters={"ResponseContentDisposition": f'attachment; filename="{file_name}"'})


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _hex(b64_digest: str) -> str | None:
    try:
        return base64.b64decode(b64_digest, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


class RegistryStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The admin's and the docs page's static files: cache-busted and compressed (whitenoise) once
    `collectstatic` has written its manifest (make run, the Docker image); until then (tests, a fresh
    checkout, served from the apps' folders by WHITENOISE_USE_FINDERS) under their own names. Decided
    when the storage is first used, from the manifest itself, not by the settings."""

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: collectstatic has not run
            return name
        return super().stored_name(name)
