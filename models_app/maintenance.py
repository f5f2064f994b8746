"""Offline care of the stored files, for operators (manage.py verify_artifacts, gc_artifacts,
storage_usage): re-hash what is stored, reclaim what nothing references, and count what is used.

These are the only places that read a stored file back or delete one.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from models_app import artifacts
from models_app.models import Artifact, ModelVersion
from registry_site.errors import RegistryError
from registry_site.storage import STORAGE_ERRORS, describe_storage_error

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
Progress = Callable[[int, int, int], None]  # files done, files in all, bytes done


def _storage_reachable() -> None:
    """One clear error, before any file is tried, when the storage cannot be reached at all (an S3
    endpoint that does not answer, refused credentials, a missing bucket or folder)."""
    try:
        artifacts.storage.check_reachable()
    except STORAGE_ERRORS as exc:
        raise RegistryError(f"The artifact storage cannot be reached: {describe_storage_error(exc)}") from None


# --- verify -----------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    checked: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)  # "<sha256>: <what is wrong>"
    orphaned: list[str] = field(default_factory=list)  # storage keys no row references
    unreadable: list[str] = field(default_factory=list)  # "<sha256 or key>: <the storage's error>"
    unverified: list[str] = field(default_factory=list)  # --fast: no checksum of ours kept with the object

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.orphaned or self.unreadable or self.unverified)


def _rehash(artifact: Artifact, report: VerifyReport) -> None:
    digest, size = hashlib.sha256(), 0
    for chunk in artifacts.read_chunks(artifact.storage_key):
        digest.update(chunk)
        size += len(chunk)
    report.bytes_read += size
    if digest.hexdigest() != artifact.sha256:
        report.corrupted.append(f"{artifact.sha256}: content hashes to {digest.hexdigest()}")
    elif size != artifact.size:
        report.corrupted.append(f"{artifact.sha256}: {size} bytes stored, {artifact.size} recorded")


def _compare_checksums(artifact: Artifact, report: VerifyReport) -> None:
    """--fast: what the store keeps with the object (one HEAD) against the row. Our sha256 travels in the
    object's metadata, so any object replaced by something other than the registry (which would have to
    forge it) is caught; the store's own SHA-256, when it keeps a whole-object one, must match too."""
    stored = artifacts.storage.stored_checksum(artifact.storage_key)
    if stored is None:
        raise RegistryError("--fast needs a storage that keeps checksums (S3); the local folder is read whole.")
    if stored.size != artifact.size:
        report.corrupted.append(f"{artifact.sha256}: {stored.size} bytes stored, {artifact.size} recorded")
    elif stored.recorded_sha256 is None:
        report.unverified.append(
            f"{artifact.sha256}: no sha256 kept with the object (stored before checksums were kept, or "
            "replaced outside the registry); verify it without --fast"
        )
    elif stored.recorded_sha256 != artifact.sha256:
        report.corrupted.append(f"{artifact.sha256}: the object says its sha256 is {stored.recorded_sha256}")
    elif stored.store_sha256 is not None and stored.store_sha256 != artifact.sha256:
        report.corrupted.append(f"{artifact.sha256}: the store's own SHA-256 is {stored.store_sha256}")


def verify_artifacts(
    *, model_name: str | None = None, fast: bool = False, progress: Progress | None = None
) -> VerifyReport:
    """Re-hash every stored file (of one model, if named) against its row; with `fast`, compare the
    checksums the store keeps instead (a HEAD per file, no byte read). A file that cannot be read is
    reported and the others are still checked."""
    _storage_reachable()
    selected = Artifact.objects.order_by("sha256")
    if model_name:
        selected = selected.filter(Exists(ModelVersion.objects.filter(artifact=OuterRef("pk"), model__name=model_name)))
    rows = list(selected)
    report = VerifyReport()
    for done, artifact in enumerate(rows, start=1):
        try:
            if not artifacts.exists(artifact.storage_key):
                report.missing.append(artifact.sha256)
            elif fast:
                _compare_checksums(artifact, report)
            else:
                _rehash(artifact, report)
        except STORAGE_ERRORS as exc:
            report.unreadable.append(f"{artifact.sha256}: {describe_storage_error(exc)}")
        report.checked = done
        if progress:
            progress(done, len(rows), report.bytes_read)
    if not model_name:
        try:
            report.orphaned = [orphan.key for orphan in find_orphans()]
        except STORAGE_ERRORS as exc:
            report.unreadable.append(f"(listing the stored files): {describe_storage_error(exc)}")
    return report


# --- orphans ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Orphan:
    key: str
    size: int
    since: datetime  # when it was stored: the later of its row's creation and its file's last change
    has_row: bool


def find_orphans() -> list[Orphan]:
    """The one definition of an orphan, which verify_artifacts reports and gc_artifacts removes: stored
    bytes no version references. That is an artifact row no version points to (with its file, if it
    has one), or a file under the content prefix that no referenced row names. Refused requests remove
    theirs at once and deletions theirs once committed (remove_if_orphaned), so an orphan is what a
    crash or an operator's hand left, or an upload still in flight."""
    unreferenced = Artifact.objects.exclude(Exists(ModelVersion.objects.filter(artifact=OuterRef("pk"))))
    found = {
        key: Orphan(key, size, created, has_row=True)
        for key, size, created in unreferenced.values_list("storage_key", "size", "created_at")
    }
    referenced = set(
        Artifact.objects.filter(Exists(ModelVersion.objects.filter(artifact=OuterRef("pk")))).values_list(
            "storage_key", flat=True
        )
    )
    for obj in artifacts.stored_objects():
        if obj.key in referenced:
            continue
        row = found.get(obj.key)
        since = max(row.since, obj.modified) if row else obj.modified
        found[obj.key] = Orphan(obj.key, obj.size, since, has_row=row is not None)
    return sorted(found.values(), key=lambda orphan: orphan.key)


def remove_if_orphaned(key: str) -> int | None:
    """Remove the stored bytes at `key`, file and artifact row, if no version references them; the
    bytes freed, or None if they are still referenced. Under the content's lock (artifacts.lock_content),
    so a request storing the same bytes either commits its version first (and they stay) or finds them
    gone when it links them, and stores them again from its staged copy (services._link_artifact)."""
    sha256 = key.rsplit("/", 1)[-1]
    with transaction.atomic():
        if SHA256_HEX.match(sha256):
            artifacts.lock_content(sha256)
        if ModelVersion.objects.filter(artifact__storage_key=key).exists():
            return None
        row = Artifact.objects.select_for_update().filter(storage_key=key).first()
        freed = row.size if row is not None else 0
        if artifacts.exists(key):
            artifacts.delete(key)
        if row is not None:
            row.delete()
        return freed


# --- garbage collection -----------------------------------------------------------------------------
@dataclass
class CollectReport:
    artifacts: list[str] = field(default_factory=list)  # unreferenced rows removed with their files
    orphans: list[str] = field(default_factory=list)  # stored files without a row
    staged: list[str] = field(default_factory=list)  # stale temporary uploads
    multipart: list[str] = field(default_factory=list)  # abandoned S3 multipart uploads
    errors: list[str] = field(default_factory=list)  # "<what>: <the storage's error>", left in place
    bytes_freed: int = 0


def collect_garbage(*, grace: timedelta, dry_run: bool = False, progress: Progress | None = None) -> CollectReport:
    """Remove the orphans (find_orphans) older than `grace`, stale staged uploads and abandoned S3
    multipart uploads. Removing an upload's bytes while it is in flight is safe (remove_if_orphaned),
    but would cost it a second store: the grace period spares it that."""
    _storage_reachable()
    cutoff = timezone.now() - grace
    report = CollectReport()

    try:
        candidates = [orphan for orphan in find_orphans() if orphan.since < cutoff]
    except STORAGE_ERRORS as exc:
        report.errors.append(f"(listing the stored files): {describe_storage_error(exc)}")
        candidates = []
    for done, orphan in enumerate(candidates, start=1):
        try:
            freed = orphan.size if dry_run else remove_if_orphaned(orphan.key)
        except STORAGE_ERRORS as exc:  # the row stays (its transaction rolled back): tried again next time
            report.errors.append(f"{orphan.key}: {describe_storage_error(exc)}")
            freed = None
        if freed is not None:
            if orphan.has_row:
                report.artifacts.append(orphan.key.rsplit("/", 1)[-1])
            else:
                report.orphans.append(orphan.key)
            report.bytes_freed += orphan.size
        if progress:
            progress(done, len(candidates), report.bytes_freed)

    staging = settings.FILE_UPLOAD_TEMP_DIR
    oldest = time.time() - grace.total_seconds()
    for entry in os.scandir(staging) if os.path.isdir(staging) else ():
        try:
            if entry.is_file() and entry.stat().st_mtime < oldest:
                size = entry.stat().st_size
                if not dry_run:
                    os.unlink(entry.path)
                report.staged.append(entry.name)
                report.bytes_freed += size
        except OSError as exc:
            report.errors.append(f"{entry.path}: {describe_storage_error(exc)}")

    try:
        report.multipart = artifacts.abort_stale_uploads(older_than=cutoff, dry_run=dry_run)
    except STORAGE_ERRORS as exc:
        report.errors.append(f"(abandoned multipart uploads): {describe_storage_error(exc)}")
    return report


# --- usage ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    per_model: dict[str, tuple[int, int]]  # model name -> (files, bytes), a file shared by versions once
    total_files: int
    total_bytes: int


def storage_usage() -> Usage:
    pairs = (
        ModelVersion.objects.filter(artifact__isnull=False)
        .values_list("model__name", "artifact_id", "artifact__size")
        .distinct()
        .order_by("model__name")
    )
    per_model: dict[str, tuple[int, int]] = {}
    for name, _, size in pairs:
        files, used = per_model.get(name, (0, 0))
        per_model[name] = (files + 1, used + size)
    totals = Artifact.objects.filter(Exists(ModelVersion.objects.filter(artifact=OuterRef("pk"))))
    sizes = list(totals.values_list("size", flat=True))
    return Usage(per_model, len(sizes), sum(sizes))
