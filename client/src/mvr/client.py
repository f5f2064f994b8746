"""`Registry`: the registry's REST API as Python methods, and the workflows a pipeline needs on top of it
(push a file safely, pull and verify, promote with a policy gate, roll back a target)."""

from __future__ import annotations

import base64
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mvr._http import Http, path
from mvr.errors import (
    Conflict,
    MvrError,
    NotFound,
    PolicyRefused,
    UnsupportedByServer,
    UsageError,
    VersionMismatch,
)
from mvr.transfer import Download, FileBody, download, progress_bar, sha256_of

DEFAULT_URL = "http://localhost:8003"
# The metrics the registry has always had as fields of a version (the seed's).
SEED_METRICS = ("accuracy", "precision", "recall", "f1_score", "mAP")
FORMAT_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite", ".pt": "pytorch", ".pth": "pytorch"}
# Where a promotion policy's evaluation may sit in an answer, and what its rules may be called.
EVALUATION_KEYS = ("evaluation", "policy")
CHECK_LIST_KEYS = ("checks", "rules", "failed_rules", "violations")


@dataclass(frozen=True)
class Capabilities:
    """What the registry's API offers beyond the seed, read once from its OpenAPI schema."""

    metrics: bool = False  # versions take `metrics`: {name: number} beyond the five seed fields
    tags: bool = False  # versions take `tags`: {name: text}
    dry_run: bool = False  # POST /deploy takes `dry_run` and answers with a policy evaluation
    idempotency_keys: bool = False  # POST /deploy documents an Idempotency-Key header

    @classmethod
    def from_openapi(cls, schema: dict) -> Capabilities:
        version = _request_properties(schema, "/models/{name}/versions", "post")
        deploy = _request_properties(schema, "/deploy", "post")
        try:
            parameters = schema["paths"]["/deploy"]["post"].get("parameters", [])
        except (KeyError, TypeError, AttributeError):
            parameters = []
        return cls(
            metrics="metrics" in version,
            tags="tags" in version,
            dry_run="dry_run" in deploy,
            idempotency_keys=any(
                isinstance(p, dict) and p.get("in") == "header" and str(p.get("name", "")).lower() == "idempotency-key"
                for p in parameters
            ),
        )


def _request_properties(schema: dict, route: str, method: str) -> set[str]:
    try:
        body = schema["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in body:
            body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        return set(body.get("properties", {}))
    except (KeyError, TypeError, AttributeError):
        return set()


@dataclass
class PushResult:
    outcome: str  # "created", "attached" (the version existed without its file) or "unchanged"
    version: dict
    sha256: str
    size: int
    uploaded: int  # bytes sent (0 when unchanged)
    seconds: float


@dataclass
class Evaluation:
    """Would a deploy be allowed? From the registry's policies when it has them (`evaluated_by` =
    "registry"), otherwise from the checks the client can make itself ("client")."""

    allowed: bool
    evaluated_by: str
    checks: list[dict] = field(default_factory=list)
    active: dict | None = None  # the deployment the promotion would supersede
    note: str = ""
    body: Any = None  # the registry's whole answer, when it evaluated

    def as_dict(self) -> dict:
        return {
            "dry_run": True,
            "allowed": self.allowed,
            "evaluated_by": self.evaluated_by,
            "checks": self.checks,
            "active": self.active,
            "note": self.note,
            **({"registry": self.body} if self.body is not None else {}),
        }


def policy_checks(body: Any) -> list[dict]:
    """The rules of a promotion policy's evaluation in an answer, wherever the registry puts them."""
    if not isinstance(body, dict):
        return []
    for container in (body, *(body.get(k) for k in EVALUATION_KEYS)):
        if isinstance(container, dict):
            for key in CHECK_LIST_KEYS:
                checks = container.get(key)
                if isinstance(checks, list) and checks:
                    return [c if isinstance(c, dict) else {"rule": str(c), "passed": False} for c in checks]
    return []


def _evaluation_allowed(body: Any, checks: list[dict]) -> bool:
    for container in (body, *(body.get(k) for k in EVALUATION_KEYS if isinstance(body, dict))):
        if isinstance(container, dict):
            for key in ("allowed", "passed", "ok"):
                if isinstance(container.get(key), bool):
                    return container[key]
    return all(check.get("passed", check.get("ok", False)) is True for check in checks)


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """MODEL, MODEL:VERSION or MODEL@TARGET -> (model, version, target)."""
    if "@" in ref:
        model, target = ref.split("@", 1)
        if not model or not target:
            raise UsageError(f"'{ref}' is not MODEL@TARGET.")
        return model, None, target
    model, _, version = ref.partition(":")
    if not model or (ref.endswith(":") and not version):
        raise UsageError(f"'{ref}' is not MODEL or MODEL:VERSION.")
    return model, version or None, None


def guess_format(file: Path) -> str | None:
    return FORMAT_BY_SUFFIX.get(file.suffix.lower())


def _same(theirs: Any, ours: Any) -> bool:
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return math.isclose(theirs, ours, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return ours.keys() <= theirs.keys() and all(_same(theirs[k], v) for k, v in ours.items())
    return theirs == ours


# A version's lifecycle, which moves on after registration (someone approves it): a re-run of the push
# that registered it neither compares nor resets it.
LIFECYCLE_FIELDS = frozenset({"version", "status", "is_default"})


def version_differences(existing: dict, wanted: dict) -> dict[str, tuple[Any, Any]]:
    """Fields this push states that the registered version has otherwise: {field: (registry's, ours)}."""
    return {
        name: (existing.get(name), value)
        for name, value in wanted.items()
        if name not in LIFECYCLE_FIELDS and not _same(existing.get(name), value)
    }


class Registry:
    """The registry at `url` (default: $REGISTRY_URL, else http://localhost:8003), with `token` (default:
    $REGISTRY_TOKEN). `progress` shows progress bars on stderr for file transfers."""

    page_size = 500  # items per request when a list is read (the registry's maximum)

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        retries: int = 5,
        timeout: float = 300.0,
        backoff: float = 0.5,
        progress: bool = False,
    ) -> None:
        self.url = (url or os.environ.get("REGISTRY_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("REGISTRY_TOKEN")
        self.http = Http(self.url, token or None, retries=retries, timeout=timeout, backoff=backoff)
        self.progress = progress

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------
    def _get(self, url_path: str, **params: Any) -> Any:
        return self.http.request("GET", url_path, params=_query(params)).json()

    def _post(self, url_path: str, body: dict, *, retry_ambiguous: bool = False) -> Any:
        # One key for every attempt of this call: a registry that honours Idempotency-Key answers a
        # retry with the first answer instead of acting twice.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return self.http.request("POST", url_path, json=body, headers=headers, retry_ambiguous=retry_ambiguous)

    def _pages(self, url_path: str, params: dict[str, Any]) -> Iterator[dict]:
        """Every item of a list, following the cursor pages. Only the `next` link's query is used: its
        host is whatever the registry believes it is called, which behind a proxy may not be ours."""
        query = {**_query(params), "page_size": self.page_size}
        while True:
            page = self.http.request("GET", url_path, params=query).json()
            yield from page.get("results", [])
            following = page.get("next")
            if not following:
                return
            query = dict(parse_qsl(urlsplit(following).query))

    @cached_property
    def capabilities(self) -> Capabilities:
        """Read from /openapi.json once; a registry without a readable schema offers only the seed's API."""
        try:
            return Capabilities.from_openapi(self._get("/openapi.json"))
        except (MvrError, ValueError):
            return Capabilities()

    # --- reads --------------------------------------------------------------------------------------
    def health(self) -> dict:
        response = self.http.request("GET", "/health", ok_statuses=(503,))
        return response.json()

    def models(self, **filters: Any) -> Iterator[dict]:
        """Filters: model_type, is_active."""
        return self._pages("/models", filters)

    def model(self, name: str) -> dict:
        return self._get(path("models", name))

    def versions(self, model: str, **filters: Any) -> Iterator[dict]:
        """Filters: status, is_default, format. Newest first."""
        return self._pages(path("models", model, "versions"), filters)

    def version(self, model: str, version: str = "default") -> dict:
        """One version; "default" and "latest" name the model's default and newest versions."""
        return self._get(path("models", model, "versions", version))

    def deployments(self, **filters: Any) -> Iterator[dict]:
        """Filters: model, version, target, status. Newest first."""
        return self._pages("/deployments", filters)

    def deployment(self, deployment_id: int) -> dict:
        return self._get(path("deployments", str(deployment_id)))

    def active_deployment(self, model: str, target: str) -> dict | None:
        for deployment in self.deployments(model=model, target=target, status="active"):
            return deployment
        return None

    def compare(
        self, refs: list[str], *, window: str | None = None, source: str | None = None, agg: str | None = None
    ) -> dict:
        """Versions side by side, the first the baseline (GET /compare): each ref MODEL:VERSION,
        MODEL@TARGET or MODEL (its default). With `window` (24h, 7d...), their metric history over it
        (from `source` only, aggregated by `agg`) rather than their registered metrics."""
        names = []
        for ref in refs:
            model, version, target = parse_ref(ref)
            names.append(f"{model}:{'@' + target if target else version or 'default'}")
        return self._get("/compare", versions=",".join(names), window=window, source=source, agg=agg)

    def audit(self, **filters: Any) -> Iterator[dict]:
        """Filters: model, actor, action, since, until (needs the admin role)."""
        return self._pages("/audit", filters)

    # --- models -------------------------------------------------------------------------------------
    def create_model(
        self, name: str, model_type: str, *, description: str = "", is_active: bool = True, exist_ok: bool = False
    ) -> dict:
        body = {"name": name, "model_type": model_type, "description": description, "is_active": is_active}
        try:
            return self._post("/models", body, retry_ambiguous=True).json()
        except Conflict:
            if not exist_ok:
                raise
            return self.model(name)

    def update_model(self, name: str, **changes: Any) -> dict:
        """Changes: description, model_type, is_active."""
        return self.http.request("PATCH", path("models", name), json=changes).json()

    def delete_model(self, name: str) -> None:
        self.http.request("DELETE", path("models", name))

    # --- versions -----------------------------------------------------------------------------------
    def register_version(self, model: str, version: str, format: str, **fields: Any) -> dict:
        """Register a version without its file (JSON); attach the file with `upload_file`."""
        body = {"version": version, "format": format, **fields}
        return self._post(path("models", model, "versions"), body, retry_ambiguous=True).json()

    def update_version(self, model: str, version: str, **changes: Any) -> dict:
        """Changes: status, the metrics, shapes, training_config, release_notes, deployment_config..."""
        return self.http.request("PATCH", path("models", model, "versions", version), json=changes).json()

    def delete_version(self, model: str, version: str) -> None:
        self.http.request("DELETE", path("models", model, "versions", version))

    def log_metrics(self, model: str, version: str, points: list[dict]) -> dict:
        """Record metric history points ({name, value, timestamp?, step?, source?}), all or none; the
        Idempotency-Key makes a retried batch count once."""
        url = path("models", model, "versions", version, "metrics")
        return self._post(url, {"points": points}, retry_ambiguous=True).json()

    def metric_points(self, model: str, version: str, **filters: Any) -> Iterator[dict]:
        """A version's metric history, newest first. Filters: name, source, since, until."""
        return self._pages(path("models", model, "versions", version, "metrics"), filters)

    def approve(self, model: str, version: str, target: str, *, comment: str = "") -> dict:
        """Approve a version for a target (a promotion policy's four-eyes rule counts approvals by others
        than the one who deploys)."""
        url = path("models", model, "versions", version, "approvals")
        return self._post(url, {"target": target, "comment": comment}, retry_ambiguous=True).json()

    def set_default(self, model: str, version: str) -> dict:
        return self._post(path("models", model, "versions", version, "default"), {}, retry_ambiguous=True).json()

    def upload_file(self, model: str, version: str, file: str | Path, *, sha256: str | None = None) -> dict:
        """Attach `file` to a version registered without one, with the raw PUT: the bytes stream from disk,
        and the declared sha256 lets the registry refuse (and store nothing) if they arrive different. A
        retry after a lost answer finds the file attached and checks it is this one."""
        file = Path(file)
        size = file.stat().st_size
        sha256 = sha256 or sha256_of(file, progress=self.progress)
        digest = base64.b64encode(bytes.fromhex(sha256)).decode()
        url_path = path("models", model, "versions", version, "file")
        with progress_bar(size, f"uploading {file.name}", self.progress) as bar:
            try:
                response = self.http.request(
                    "PUT",
                    url_path,
                    params={"sha256": sha256, "filename": file.name},
                    headers={"Content-Type": "application/octet-stream", "Content-Digest": f"sha-256=:{digest}:"},
                    body=(lambda: FileBody(file, size, bar)) if size else (lambda: b""),
                    # The answer comes once the registry has stored every byte (fsync, or the copy to
                    # S3): allow for that on large files.
                    timeout=max(self.http.timeout, size / 20e6),
                )
            except Conflict:
                current = self.version(model, version)
                if current.get("checksum") == sha256:
                    return current
                raise
        return response.json()

    def version_fields(
        self,
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        **fields: Any,
    ) -> dict:
        """A version's JSON fields: the seed's five metrics as fields; other metrics and tags in the
        registry's open metadata when its schema offers it, refused clearly when it does not."""
        body = {name: value for name, value in fields.items() if value is not None}
        if isinstance(body.get("release_notes"), str):
            # The registry trims text fields; trimmed here too, a re-run compares equal to what it stored.
            body["release_notes"] = body["release_notes"].strip()
        custom: dict[str, float] = {}
        for name, value in (metrics or {}).items():
            seed_name = next((m for m in SEED_METRICS if m.lower() == name.lower()), None)
            if seed_name:
                body[seed_name] = value
            else:
                custom[name] = value
        if custom:
            if not self.capabilities.metrics:
                raise UnsupportedByServer(
                    f"The registry at {self.url} does not support custom metrics yet ({', '.join(sorted(custom))}); "
                    f"it records only {', '.join(SEED_METRICS)}."
                )
            body["metrics"] = custom
        if tags:
            if not self.capabilities.tags:
                raise UnsupportedByServer(
                    f"The registry at {self.url} does not support tags yet ({', '.join(sorted(tags))}); "
                    "record them in the release notes or the training config for now."
                )
            body["tags"] = dict(tags)
        return body

    def push(
        self,
        model: str,
        version: str,
        file: str | Path,
        *,
        format: str | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        make_default: bool = False,
        create_model: bool = False,
        model_type: str | None = None,
        model_description: str = "",
        **fields: Any,
    ) -> PushResult:
        """Register `version` of `model` with `file`, safely re-runnable.

        The file is hashed first; the version is registered as JSON (no bytes), then the file is streamed
        with the raw PUT, declaring its sha256. Run again, it finds the version: the same file and
        metadata is success ("unchanged"), a version registered without its file (an earlier run was cut
        off) gets it ("attached"), and anything different raises VersionMismatch naming the fields.
        `fields`: status, input_shape, output_shape, release_notes, training_config, deployment_config."""
        started = time.monotonic()
        file = Path(file)
        if not file.is_file():
            raise UsageError(f"{file} is not a file." + (" Archive a directory first (zip)." if file.is_dir() else ""))
        format = format or guess_format(file)
        if not format:
            raise UsageError(f"Cannot tell the format of {file.name} from its name: give --format.")
        wanted = {"version": version, "format": format, **self.version_fields(metrics=metrics, tags=tags, **fields)}
        if create_model:
            self._ensure_model(model, model_type, model_description)

        size = file.stat().st_size
        sha256 = sha256_of(file, progress=self.progress, description=f"hashing {file.name}")
        existing = self._find_version(model, version)
        created = existing is None
        if created:
            try:
                existing = self.register_version(model, **wanted)
            except Conflict:  # registered meanwhile, or our own earlier attempt whose answer was lost
                existing, created = self.version(model, version), False
            if existing.get("checksum"):
                # A registry with idempotent registration answers a version registered meanwhile with
                # the same metadata (200): it compared only what a JSON body states, not the file.
                created = False
        if not created:
            differences = version_differences(existing, wanted)
            if existing.get("checksum") and existing["checksum"] != sha256:
                differences["checksum"] = (existing["checksum"], sha256)
            if differences:
                listed = "; ".join(
                    f"{name}: registry has {theirs!r}, this push {ours!r}"
                    for name, (theirs, ours) in differences.items()
                )
                raise VersionMismatch(
                    f"Version '{version}' of model '{model}' is already registered, differently ({listed}). "
                    "A version never changes: push a new version.",
                    differences=differences,
                )

        uploaded = 0
        if existing.get("checksum"):
            outcome = "unchanged"
        else:
            existing = self.upload_file(model, version, file, sha256=sha256)
            uploaded, outcome = size, "created" if created else "attached"
        if make_default and not existing.get("is_default"):
            existing = self.set_default(model, version)
        return PushResult(outcome, existing, sha256, size, uploaded, time.monotonic() - started)

    def _find_version(self, model: str, version: str) -> dict | None:
        try:
            return self.version(model, version)
        except NotFound:
            try:
                self.model(model)
            except NotFound as missing:
                raise NotFound(
                    f"Model '{model}' does not exist: create it with `mvr models create` or push with --create-model.",
                    status=missing.status,
                    body=missing.body,
                ) from None
            return None

    def _ensure_model(self, model: str, model_type: str | None, description: str) -> None:
        try:
            self.model(model)
        except NotFound:
            if not model_type:
                raise UsageError(f"Model '{model}' does not exist: give --model-type to create it.") from None
            self.create_model(model, model_type, description=description, exist_ok=True)

    # --- files --------------------------------------------------------------------------------------
    def resolve(self, ref: str) -> dict:
        """The version MODEL, MODEL:VERSION or MODEL@TARGET names (the default; that version; the version
        active on that target)."""
        model, version, target = parse_ref(ref)
        if target:
            active = self.active_deployment(model, target)
            if active is None:
                raise NotFound(f"No version of model '{model}' is active on target '{target}'.", status=404)
            version = active["version"]
        return self.version(model, version or "default")

    def pull(self, ref: str, destination: str | Path | None = None) -> Download:
        """Download the file of the version `ref` names (see `resolve`) to `destination` (a file, or a
        folder for the registered file name; default: the current folder), verified against its sha256,
        resuming a download an earlier call left unfinished."""
        info = self.resolve(ref)
        if not info.get("checksum"):
            raise MvrError(f"Version '{info['version']}' of model '{info['model']}' has no file.")
        target = Path(destination) if destination is not None else Path.cwd()
        if target.is_dir():
            name = Path(info.get("file_name") or "").name or f"{info['model']}-{info['version']}"
            target = target / name
        return download(
            self.http,
            path("models", info["model"], "versions", info["version"], "file"),
            target,
            sha256=info["checksum"],
            size=info["file_size"],
            progress=self.progress,
        )

    # --- deployments --------------------------------------------------------------------------------
    def deploy(
        self,
        model: str,
        version: str,
        target: str,
        *,
        deployed_by: str | None = None,
        deployment_config: dict | None = None,
    ) -> dict:
        """Make `version` the active deployment of `model` on `target` (the registry answers the existing
        deployment when it already is). A refusal by a promotion policy raises PolicyRefused with the
        rules it evaluated."""
        body = _deploy_body(model, version, target, deployed_by, deployment_config)
        try:
            # Repeating a deploy is harmless: the second one finds the version active and changes nothing.
            return self._post("/deploy", body, retry_ambiguous=True).json()
        except Conflict as exc:
            checks = policy_checks(exc.body)
            if checks:
                raise PolicyRefused(exc.message, status=exc.status, body=exc.body, checks=checks) from None
            raise

    def evaluate_deploy(
        self,
        model: str,
        version: str,
        target: str,
        *,
        deployed_by: str | None = None,
        deployment_config: dict | None = None,
    ) -> Evaluation:
        """What `deploy` would meet, without deploying: the registry's own policy evaluation (`dry_run`)
        when its API has one; otherwise the checks the client can make (the version exists, has its file,
        is not archived), with a note saying that no policy was evaluated."""
        active = self.active_deployment(model, target)
        if self.capabilities.dry_run:
            body = {**_deploy_body(model, version, target, deployed_by, deployment_config), "dry_run": True}
            try:
                answer = self._post("/deploy", body, retry_ambiguous=True).json()
            except Conflict as exc:  # a registry may answer a failed evaluation with its 409 too
                checks = policy_checks(exc.body)
                if not checks:
                    raise
                return Evaluation(False, "registry", checks, active, body=exc.body)
            checks = policy_checks(answer)
            return Evaluation(_evaluation_allowed(answer, checks), "registry", checks, active, body=answer)

        info = self.version(model, version)
        checks = [
            {"rule": "version exists", "passed": True, "detail": f"{model}:{info['version']} ({info.get('status')})"},
            {
                "rule": "file attached",
                "passed": bool(info.get("checksum")),
                "detail": f"sha256 {info['checksum']}" if info.get("checksum") else "no file: push it first",
            },
            {
                "rule": "not archived",
                "passed": info.get("status") != "archived",
                "detail": f"status {info.get('status')}",
            },
        ]
        note = (
            f"The registry at {self.url} does not evaluate promotion policies yet (its API has no dry_run): "
            "only the client's own checks ran."
        )
        return Evaluation(all(c["passed"] for c in checks), "client", checks, active, note=note)

    def rollback(self, model: str, target: str, *, reason: str = "") -> dict:
        """Roll back whatever is active for `model` on `target`: the previous deployment there becomes
        active again (or the target is left empty)."""
        active = self.active_deployment(model, target)
        if active is None:
            raise NotFound(f"Nothing of model '{model}' is active on target '{target}' to roll back.", status=404)
        return self.rollback_deployment(active["id"], reason=reason)

    def rollback_deployment(self, deployment_id: int, *, reason: str = "") -> dict:
        # Repeating a rollback that took effect would be refused (no longer active), not harmful; but
        # without Idempotency-Key the retry's 409 would hide the success, so repeat only where it is known.
        return self._post(
            path("deployments", str(deployment_id), "rollback"),
            {"reason": reason},
            retry_ambiguous=self.capabilities.idempotency_keys,
        ).json()


def _deploy_body(
    model: str, version: str, target: str, deployed_by: str | None, deployment_config: dict | None
) -> dict:
    body: dict[str, Any] = {"model_name": model, "version": version, "deployment_target": target}
    if deployed_by:
        body["deployed_by"] = deployed_by
    if deployment_config is not None:
        body["deployment_config"] = deployment_config
    return body


def _query(params: dict[str, Any]) -> dict[str, str]:
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }
