"""Copies of the registry elsewhere: backup and restore of a whole registry (manage.py backup DEST,
manage.py restore SRC), and moving its files to another storage (manage.py migrate_storage --to DEST).

A backup is a folder or an S3 prefix holding:

    files/sha256/ab/cd/<sha256>            every stored model file, by content: shared by all snapshots
    snapshots/<UTC time>/database.json.gz  the registry's rows (Django's JSON: restores into SQLite or PostgreSQL)
    snapshots/<UTC time>/manifest.json     the files the rows need; written last, so only a finished
                                           snapshot has one

The rows are read in one snapshot transaction (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite), so a backup taken while uploads and deploys run is consistent: every row it holds points at rows
and files it also holds. Files are copied after the rows, by content address, hashed on the way: a second
backup copies only new files, and a file that does not hash to its name fails the backup. Files that the
snapshot's rows reference are never deleted by the registry meanwhile (gc_artifacts keeps a grace period).

Restoring copies the files into the registry's storage first, checking each one's sha256, then loads the
rows in one transaction; a failure removes the files it stored and leaves the registry as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import IO, Any, cast

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.core.management import call_command
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from deployments_app.models import Deployment, Target
from deployments_app.selectors import find_target
from models_app import artifacts
from models_app.models import Artifact, ModelVersion, RegisteredModel
from models_app.uploads import receive_stream
from registry_site.errors import Conflict, InvalidInput
from registry_site.models import ApiToken, AuditEvent, FailureCounter
from registry_site.storage import ArtifactStorage, LocalArtifactStorage, S3ArtifactStorage

FORMAT = 1
CHUNK = 1024 * 1024
# What a registry is: its own tables, and the users and roles its tokens and audit trail name. Permissions
# and content types are made by the migrations and referred to by natural key.
DUMPED = ["auth.group", "auth.user", "models_app", "deployments_app", "registry_site"]
# The tables a report always names, then every other table of the registry's own (metric history,
# experiments, policies, webhooks...), named when it holds rows. Targets are not among them: the
# migrations make the first ones (restore handles them), and the failure counters are the throttle's.
CORE_TABLES = [RegisteredModel, ModelVersion, Artifact, Deployment, ApiToken, AuditEvent]
REGISTRY_TABLES = CORE_TABLES + [
    model
    for label in ("models_app", "deployments_app", "registry_site")
    for model in apps.get_app_config(label).get_models()
    if model not in CORE_TABLES and model not in (Target, FailureCounter)
]


def row_counts() -> dict[str, int]:
    """Rows per table for a report: the core tables always, the others when they hold any."""
    counts = {model._meta.db_table: model._default_manager.count() for model in REGISTRY_TABLES}
    core = {model._meta.db_table for model in CORE_TABLES}
    return {table: n for table, n in counts.items() if n or table in core}


Progress = Callable[[str], None]


@dataclass
class BackupReport:
    snapshot: str
    files: int = 0
    copied: int = 0
    bytes_copied: int = 0
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class RestoreReport:
    snapshot: str
    files: int = 0
    copied: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def destination(location: str) -> Storage:
    """A folder, or `s3://bucket/prefix` (the endpoint, region and keys of the registry's own S3 settings)."""
    if location.startswith("s3://"):
        from storages.backends.s3 import S3Storage

        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidInput(f"{location!r} names no bucket: use s3://bucket/prefix.", field="location")
        return S3Storage(
            bucket_name=bucket,
            location=prefix.strip("/"),
            endpoint_url=settings.REGISTRY_S3_ENDPOINT_URL,
            region_name=settings.REGISTRY_S3_REGION,
            file_overwrite=True,
        )
    return FileSystemStorage(location=os.path.abspath(location), allow_overwrite=True)


def file_key(sha256: str) -> str:
    return f"files/{artifacts.storage_key_for(sha256)}"


# --- backup -----------------------------------------------------------------------------------------
def backup(target: Storage, *, progress: Progress = lambda line: None) -> BackupReport:
    snapshot = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    with tempfile.TemporaryDirectory(dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        dump = os.path.join(scratch, "database.json.gz")
        with _read_snapshot():
            _dump_rows(dump)
            files = list(Artifact.objects.order_by("sha256").values_list("sha256", "size", "storage_key"))
            rows = row_counts()
        report = BackupReport(snapshot, files=len(files), rows=rows)
        for sha256, size, storage_key in files:
            if _has(target, file_key(sha256), size):
                continue
            _copy_verified(artifacts.read_chunks(storage_key, CHUNK), sha256, target, file_key(sha256))
            report.copied += 1
            report.bytes_copied += size
            progress(f"copied {sha256} ({size} bytes)")
        with open(dump, "rb") as database:
            target.save(f"snapshots/{snapshot}/database.json.gz", File(database))
    manifest = {
        "format": FORMAT,
        "snapshot": snapshot,
        "database": "database.json.gz",
        "rows": rows,
        "files": [{"sha256": sha256, "size": size} for sha256, size, _ in files],
    }
    _write_json(target, f"snapshots/{snapshot}/manifest.json", manifest)  # last: the snapshot is complete
    return report


class _ExactJSONEncoder(DjangoJSONEncoder):
    """Django's encoder drops a time's microseconds; a restored registry must give back the same values."""

    def default(self, o):
        if isinstance(o, (datetime, time)):
            return o.isoformat()
        return super().default(o)


def _dump_rows(path: str) -> None:
    """Every row of DUMPED, as Django's JSON fixtures (loaddata reads them into any database)."""
    models = []
    for label in DUMPED:
        app_label, _, model_name = label.partition(".")
        config = apps.get_app_config(app_label)
        models += [config.get_model(model_name)] if model_name else list(config.get_models())
    rows = itertools.chain.from_iterable(model._default_manager.order_by("pk").iterator() for model in models)
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        serializers.serialize(
            "json",
            rows,
            stream=stream,
            cls=_ExactJSONEncoder,
            use_natural_foreign_keys=True,
            use_natural_primary_keys=True,
        )


class _read_snapshot:
    """One consistent view of every table for the reads inside it: on PostgreSQL a REPEATABLE READ
    transaction (inside an outer transaction, as in tests, that transaction's view already is one); on
    SQLite the transaction itself."""

    def __enter__(self):
        outermost = not connection.in_atomic_block
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return self

    def __exit__(self, *exc):
        return self.atomic.__exit__(*exc)


def _has(target: Storage, key: str, size: int) -> bool:
    if not target.exists(key):
        return False
    if target.size(key) == size:
        return True
    target.delete(key)  # a copy cut short by an earlier run
    return False


class _HashingReader:
    """A file-like view of chunks that hashes what is read."""

    closed = False

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = (self._buffer, b"") if n < 0 else (self._buffer[:n], self._buffer[n:])
        self.digest.update(data)
        self.size += len(data)
        return data

    def seekable(self) -> bool:
        return False


def _copy_verified(chunks: Iterable[bytes], sha256: str, target: Storage, key: str) -> None:
    reader = _HashingReader(chunks)
    target.save(key, File(reader, name=key))  # type: ignore[arg-type]
    if reader.digest.hexdigest() != sha256:
        target.delete(key)
        raise Conflict(
            f"Stored file {sha256} hashes to {reader.digest.hexdigest()}: it is damaged "
            "(manage.py verify_artifacts lists every damaged file)."
        )


def _write_json(target: Storage, key: str, value: dict) -> None:
    with tempfile.TemporaryFile() as out:
        out.write(json.dumps(value, indent=1).encode())
        out.seek(0)
        target.save(key, File(out))


# --- restore ----------------------------------------------------------------------------------------
def snapshots(source: Storage) -> list[str]:
    """The finished snapshots in a backup, oldest first."""
    try:
        names, _ = source.listdir("snapshots")
    except FileNotFoundError:
        return []
    return sorted(name for name in names if source.exists(f"snapshots/{name}/manifest.json"))


def restore(
    source: Storage, *, snapshot: str | None = None, replace: bool = False, progress: Progress = lambda line: None
) -> RestoreReport:
    finished = snapshots(source)
    if not finished:
        raise InvalidInput(
            "No finished backup snapshot here (a snapshot is finished once its manifest.json is written)."
        )
    snapshot = snapshot or finished[-1]
    if snapshot not in finished:
        raise InvalidInput(f"No finished snapshot {snapshot!r}; there are: {', '.join(finished)}.", field="snapshot")
    with source.open(f"snapshots/{snapshot}/manifest.json") as opened:
        manifest = json.load(opened)
    if manifest.get("format") != FORMAT:
        raise InvalidInput(
            f"Snapshot {snapshot} has backup format {manifest.get('format')}, this registry reads {FORMAT}."
        )
    occupied = {model._meta.db_table: n for model in REGISTRY_TABLES if (n := model._default_manager.count())}
    if occupied and not replace:
        raise Conflict(
            f"This registry is not empty ({', '.join(f'{n} in {table}' for table, n in occupied.items())}); "
            "restore into an empty one, or pass --replace to delete what it holds first."
        )
    report = RestoreReport(snapshot, files=len(manifest["files"]))
    stored: list[str] = []
    try:
        for entry in manifest["files"]:
            key = artifacts.storage_key_for(entry["sha256"])
            if artifacts.exists(key):
                continue
            _restore_file(source, entry["sha256"], entry["size"])
            stored.append(key)
            report.copied += 1
            progress(f"restored {entry['sha256']} ({entry['size']} bytes)")
        with tempfile.NamedTemporaryFile(suffix=".json.gz", dir=settings.FILE_UPLOAD_TEMP_DIR) as dump:
            with source.open(f"snapshots/{snapshot}/{manifest['database']}") as opened:
                _copy(opened, dump)
            dump.flush()
            with transaction.atomic():
                if occupied:
                    _empty_registry()
                _upgrade_dump(dump.name)
                call_command("loaddata", dump.name, verbosity=0)
    except BaseException:
        for key in stored:  # nothing half-restored: no file without its row
            artifacts.delete(key)
        raise
    report.rows = row_counts()
    return report


def _upgrade_dump(path: str) -> None:
    """A snapshot's rows made what this registry's migrations would have made of them, rewriting the
    dump in place when a snapshot predates one of them."""
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        rows = json.load(stream)
    changed = _prepare_targets(rows)
    changed = _scope_old_tokens(rows) or changed
    if changed:
        with gzip.open(path, "wt", encoding="utf-8") as stream:
            json.dump(rows, stream)


# What registry_site's migration 0006 gave the tokens made before tokens had scopes: every scope, no limit.
OLD_TOKEN_SCOPE = {"scope_read": True, "scope_write": True, "scope_deploy": True, "scope_admin": True}


def _scope_old_tokens(rows: list[dict]) -> bool:
    """Tokens of a snapshot taken before tokens had scopes (registry_site's migration 0006) act as their
    user, as that migration made them; without this they would load with a new token's defaults."""
    old = [
        row["fields"] for row in rows if row["model"] == "registry_site.apitoken" and "scope_read" not in row["fields"]
    ]
    for fields in old:
        fields.update(OLD_TOKEN_SCOPE)
    return bool(old)


def _prepare_targets(rows: list[dict]) -> bool:
    """The registry has no deployments now (it was empty, or --replace emptied it). A snapshot that holds
    its targets brings them back as they were: the registry's own (the migration's) make way. A snapshot
    taken before targets were a table (deployments_app's migration 0005) names each deployment's target
    as free text: do what that migration did, a target per name folded to lower case (or the registry's
    own target of that name in any case), each row pointed at it, and one active deployment per model and
    target (the newest). True when it changed `rows`."""
    if any(row["model"] == "deployments_app.target" for row in rows):
        Target.objects.all().delete()
        return False
    deployments = [row["fields"] for row in rows if row["model"] == "deployments_app.deployment"]
    if not deployments:
        return False
    canonical: dict[str, str] = {}
    for spelling in sorted({fields["deployment_target"] for fields in deployments}):
        folded = spelling.lower()
        if folded not in canonical:
            found = find_target(folded)
            canonical[folded] = found.name if found else Target.objects.create(name=folded, display_order=100).name
    newest: dict[tuple[str, str], dict] = {}
    for fields in deployments:
        fields["deployment_target"] = canonical[fields["deployment_target"].lower()]
        if fields["deployment_status"] != "active":
            continue
        key = (json.dumps(fields["model"]), fields["deployment_target"])
        other = newest.get(key)
        if other is None:
            newest[key] = fields
            continue
        older, newer = sorted((other, fields), key=lambda f: f["deployed_at"])
        older["deployment_status"] = "superseded"
        newest[key] = newer
    return True


def _restore_file(source: Storage, sha256: str, size: int) -> None:
    with source.open(file_key(sha256)) as opened:
        upload = receive_stream(opened, file_name=sha256)
    try:
        if upload.sha256 != sha256 or upload.size != size:
            raise Conflict(
                f"The backup's copy of {sha256} is damaged (it hashes to {upload.sha256}); nothing restored."
            )
        artifacts.put_file(upload)
    finally:
        upload.close()


def _copy(source: IO[bytes], out: IO[bytes]) -> None:
    while chunk := source.read(CHUNK):
        out.write(chunk)


def _empty_registry() -> None:
    """--replace: the registry's rows go (TRUNCATE on PostgreSQL, where audit events refuse DELETE)."""
    truncate([model._meta.db_table for model in REGISTRY_TABLES])


def truncate(tables: list[str]) -> None:
    """Empty these tables (and, on PostgreSQL, what references them), inside the current transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending deferred checks
        for statement in connection.ops.sql_flush(no_style(), tables, allow_cascade=True):
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def read_database(source: Storage, snapshot: str) -> list[dict]:
    """A snapshot's rows as Django's serializer wrote them (for checks and tests)."""
    with source.open(f"snapshots/{snapshot}/database.json.gz") as opened, gzip.open(opened) as unzipped:
        return json.load(unzipped)


# --- moving storage ---------------------------------------------------------------------------------
@dataclass
class MoveReport:
    files: int = 0
    copied: int = 0
    already: int = 0
    bytes_copied: int = 0
    failed: list[str] = field(default_factory=list)


def artifact_destination(location: str) -> Storage:
    """Where migrate_storage copies to: the registry's own storage classes, so the copies are stored as
    the registry stores files (on S3 with our sha256 as checksum and metadata, which verify_artifacts
    --fast compares)."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidInput(f"{location!r} names no bucket: use s3://bucket/prefix.", field="location")
        options: dict[str, Any] = {**settings.REGISTRY_S3_OPTIONS}
        options.update(endpoint_url=settings.REGISTRY_S3_ENDPOINT_URL, region_name=settings.REGISTRY_S3_REGION)
        return S3ArtifactStorage(bucket_name=bucket, location=prefix.strip("/"), **options)
    return LocalArtifactStorage(location=os.path.abspath(location))


def migrate_storage(target: Storage, *, progress: Progress = lambda line: None) -> MoveReport:
    """Copy every stored file to `target` under the same key, then read each copy back and check its
    sha256. Changes nothing in the registry: the operator switches the storage settings once this
    reports every file verified. Run it again after an interruption: files already there are re-read and
    checked, not copied again (a damaged or partial one is replaced)."""
    files = list(Artifact.objects.order_by("sha256").values_list("sha256", "size", "storage_key"))
    report = MoveReport(files=len(files))
    for sha256, size, key in files:
        try:
            if target.exists(key) and target.size(key) == size and _hash_of(target, key) == sha256:
                report.already += 1
                continue
            if target.exists(key):
                target.delete(key)
            _store_verified(artifacts.read_chunks(key, CHUNK), sha256, target, key)
            if _hash_of(target, key) != sha256:
                target.delete(key)
                raise Conflict(f"the copy of {sha256} reads back differently")
        except Exception as exc:  # one file's problem is a line of the report, the others go on
            report.failed.append(f"{sha256}: {exc}")
            progress(f"FAILED {sha256}: {exc}")
            continue
        report.copied += 1
        report.bytes_copied += size
        progress(f"copied and verified {sha256} ({size} bytes)")
    return report


def _store_verified(chunks: Iterable[bytes], sha256: str, target: Storage, key: str) -> None:
    """Stage the file locally, hashing it, and store it as an upload is stored."""
    upload = receive_stream(_HashingReader(chunks), file_name=sha256)  # type: ignore[arg-type]
    try:
        if upload.sha256 != sha256:
            raise Conflict(
                f"Stored file {sha256} hashes to {upload.sha256}: it is damaged "
                "(manage.py verify_artifacts lists every damaged file)."
            )
        cast(ArtifactStorage, target).store_upload(key, upload)
    finally:
        upload.close()


def _hash_of(target: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with target.open(key) as opened:
        while chunk := opened.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
