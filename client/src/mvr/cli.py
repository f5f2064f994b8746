"""The `mvr` command: argument parsing and output around `mvr.Registry`. Every command works through the
Python API; nothing here talks HTTP."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from mvr import __version__
from mvr.client import Evaluation, Registry, parse_ref
from mvr.errors import EXIT_ERROR, EXIT_OK, EXIT_POLICY, ApiError, MvrError, PolicyRefused, UsageError

EPILOG = """\
settings: REGISTRY_URL (default http://localhost:8003) and REGISTRY_TOKEN, or --url / --token.
exit codes: 0 ok, 1 error, 2 usage, 3 refused by a promotion policy, 4 not allowed (401/403)."""


# --- parsing helpers --------------------------------------------------------------------------------
def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}: '{text}' is not a number.") from None
    if not math.isfinite(value):
        raise UsageError(f"{name}: '{text}' is not a finite number.")
    return value


def _number_type(option: str) -> Callable[[str], float]:
    """_number for argparse, which reports ArgumentTypeError as a usage error (exit 2)."""

    def parse(text: str) -> float:
        try:
            return _number(option, text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


def _pairs(items: list[str] | None, option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} takes NAME=VALUE, not '{item}'.")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _json_value(option: str, text: str) -> Any:
    """Inline JSON, or the path of a JSON file."""
    source = text if text.lstrip().startswith(("{", "[")) else None
    if source is None:
        try:
            source = Path(text).read_text()
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {text}: {exc.strerror}.") from None
    try:
        return json.loads(source)
    except ValueError as exc:
        raise UsageError(f"{option}: not valid JSON ({exc}).") from None


def _json_object(option: str, text: str | None) -> dict | None:
    if text is None:
        return None
    value = _json_value(option, text)
    if not isinstance(value, dict):
        raise UsageError(f"{option}: must be a JSON object.")
    return value


def _shape(option: str, text: str | None) -> list | None:
    """'1,3,224,224', '[1,3,224,224]'; 'null' or '?' for a dimension of any size."""
    if text is None:
        return None
    dims = []
    for part in text.strip().strip("[]").split(","):
        part = part.strip()
        if part.lower() in ("null", "none", "?", "-1"):
            dims.append(None)
        elif part.isdigit():
            dims.append(int(part))
        else:
            raise UsageError(f"{option}: '{text}' is not a shape such as 1,3,224,224.")
    return dims


def _notes(args) -> str | None:
    if getattr(args, "notes_file", None):
        try:
            return Path(args.notes_file).read_text()
        except OSError as exc:
            raise UsageError(f"--notes-file: cannot read {args.notes_file}: {exc.strerror}.") from None
    return getattr(args, "notes", None)


def _metrics(args) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if getattr(args, "metrics_file", None):
        for name, value in _json_object("--metrics-file", args.metrics_file).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"--metrics-file: '{name}' is not a number.")
            metrics[name] = _number(name, str(value))
    for option in ("accuracy", "precision", "recall", "f1_score", "mAP"):
        value = getattr(args, option, None)
        if value is not None:
            metrics[option] = value
    for name, value in _pairs(getattr(args, "metric", None), "--metric"):
        metrics[name] = _number(name, value)
    return metrics


def _version_fields(args) -> dict[str, Any]:
    return {
        "status": args.status,
        "input_shape": _shape("--input-shape", args.input_shape),
        "output_shape": _shape("--output-shape", args.output_shape),
        "release_notes": _notes(args),
        "training_config": _json_object("--training-config", args.training_config),
        "deployment_config": _json_object("--deployment-config", args.deployment_config),
    }


# --- output -----------------------------------------------------------------------------------------
def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: Iterable[dict], columns: list[tuple[str, Callable[[dict], Any]]]) -> str:
    cells = [[title for title, _ in columns]]
    cells += [[_cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def details(item: dict) -> str:
    width = max((len(k) for k in item), default=0)
    lines = []
    for key, value in item.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) and value else _cell(value)
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


class Output:
    def __init__(self, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def emit(self, data: Any, text: str | Callable[[], str]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
        elif not self.quiet:
            print(text() if callable(text) else text)


MODEL_COLUMNS = [
    ("NAME", lambda m: m["name"]),
    ("TYPE", lambda m: m.get("model_type")),
    ("DEFAULT", lambda m: m.get("default_version")),
    ("ACTIVE", lambda m: m.get("is_active")),
    ("DESCRIPTION", lambda m: (m.get("description") or "")[:60]),
]
VERSION_COLUMNS = [
    ("VERSION", lambda v: v["version"] + (" *" if v.get("is_default") else "")),
    ("FORMAT", lambda v: v.get("format")),
    ("STATUS", lambda v: v.get("status")),
    ("SIZE", lambda v: human_size(v.get("file_size")) if v.get("checksum") else "no file"),
    ("ACCURACY", lambda v: v.get("accuracy")),
    ("DEPLOYED TO", lambda v: v.get("deployed_to")),
    ("CREATED", lambda v: (v.get("created_at") or "")[:19]),
]
DEPLOYMENT_COLUMNS = [
    ("ID", lambda d: d["id"]),
    ("MODEL", lambda d: d.get("model_name")),
    ("VERSION", lambda d: d.get("version")),
    ("TARGET", lambda d: d.get("deployment_target")),
    ("STATUS", lambda d: d.get("deployment_status")),
    ("DEPLOYED AT", lambda d: (d.get("deployed_at") or "")[:19]),
    ("BY", lambda d: d.get("deployed_by")),
]
POINT_COLUMNS = [
    ("NAME", lambda p: p.get("name")),
    ("VALUE", lambda p: p.get("value")),
    ("SOURCE", lambda p: p.get("source")),
    ("STEP", lambda p: p.get("step")),
    ("AT", lambda p: (p.get("timestamp") or "")[:19]),
]
AUDIT_COLUMNS = [
    ("ID", lambda e: e.get("id")),
    ("AT", lambda e: (e.get("created_at") or e.get("at") or "")[:19]),
    ("ACTOR", lambda e: e.get("actor")),
    ("ACTION", lambda e: e.get("action")),
    ("OBJECT", lambda e: e.get("object_repr")),
]


def _listed(items: Iterable[dict], limit: int | None) -> list[dict]:
    return list(islice(items, limit) if limit else items)


# --- commands ---------------------------------------------------------------------------------------
def cmd_health(registry: Registry, args, out: Output) -> int:
    health = registry.health()
    out.emit(health, lambda: details(health))
    return EXIT_OK if health.get("status") == "healthy" else EXIT_ERROR


def cmd_ls(registry: Registry, args, out: Output) -> int:
    if args.model:
        filters = {"status": args.status, "format": args.format}
        versions = _listed(registry.versions(args.model, **filters), args.limit)
        out.emit(versions, lambda: table(versions, VERSION_COLUMNS))
    else:
        models = _listed(registry.models(model_type=args.type), args.limit)
        out.emit(models, lambda: table(models, MODEL_COLUMNS))
    return EXIT_OK


def cmd_show(registry: Registry, args, out: Output) -> int:
    model, version, target = parse_ref(args.ref)
    item = registry.resolve(args.ref) if version or target else registry.model(model)
    out.emit(item, lambda: details(item))
    return EXIT_OK


def cmd_push(registry: Registry, args, out: Output) -> int:
    tags = dict(_pairs(args.tag, "--tag"))
    result = registry.push(
        args.model,
        args.version,
        args.file,
        format=args.format,
        metrics=_metrics(args),
        tags=tags or None,
        make_default=args.default,
        create_model=args.create_model,
        model_type=args.model_type,
        model_description=args.description or "",
        **_version_fields(args),
    )
    rate = f", {result.uploaded / result.seconds / 1e6:.0f} MB/s" if result.uploaded and result.seconds else ""
    words = {
        "created": "pushed",
        "attached": "attached the file to the already registered",
        "unchanged": "already registered, unchanged:",
    }
    out.emit(
        {
            "outcome": result.outcome,
            "sha256": result.sha256,
            "size": result.size,
            "uploaded": result.uploaded,
            "seconds": round(result.seconds, 3),
            "version": result.version,
        },
        f"{words[result.outcome]} {args.model}:{args.version} ({human_size(result.size)}, sha256 {result.sha256[:12]}, "
        f"{result.seconds:.1f} s{rate})",
    )
    return EXIT_OK


def cmd_pull(registry: Registry, args, out: Output) -> int:
    result = registry.pull(args.ref, args.output)
    how = {
        "present": "already present",
        "resumed": f"resumed at {human_size(result.resumed_from)}",
        "downloaded": "downloaded",
    }
    out.emit(
        {
            "path": str(result.path),
            "sha256": result.sha256,
            "size": result.size,
            "fetched": result.fetched,
            "resumed_from": result.resumed_from,
            "outcome": result.outcome,
        },
        f"{result.path}: {how[result.outcome]}, {human_size(result.size)}, sha256 {result.sha256[:12]} verified",
    )
    return EXIT_OK


def _show_evaluation(evaluation: Evaluation) -> str:
    lines = []
    if evaluation.note:
        lines.append(evaluation.note)
    for check in evaluation.checks:
        passed = check.get("passed", check.get("ok"))
        name = check.get("rule") or check.get("name") or check.get("check") or "rule"
        detail = check.get("detail") or check.get("message") or check.get("reason") or ""
        seen = {k: check[k] for k in ("seen", "value", "required", "expected", "threshold") if k in check}
        extra = " ".join(f"{k}={json.dumps(v)}" for k, v in seen.items())
        lines.append(
            f"  [{'pass' if passed else 'FAIL'}] {name}{': ' + detail if detail else ''}{' ' + extra if extra else ''}"
        )
    if evaluation.active:
        lines.append(
            f"  now active there: {evaluation.active.get('version')} (deployment {evaluation.active.get('id')})"
        )
    verdict = "would be allowed" if evaluation.allowed else "would be refused"
    lines.append(f"dry run ({evaluation.evaluated_by} checks): the promotion {verdict}; nothing was deployed.")
    return "\n".join(lines)


def cmd_promote(registry: Registry, args, out: Output) -> int:
    config = _json_object("--config", args.config)
    if args.dry_run:
        evaluation = registry.evaluate_deploy(
            args.model, args.version, args.to, deployed_by=args.deployed_by, deployment_config=config
        )
        out.emit(evaluation.as_dict(), lambda: _show_evaluation(evaluation))
        if evaluation.allowed:
            return EXIT_OK
        return EXIT_POLICY if evaluation.evaluated_by == "registry" else EXIT_ERROR
    deployment = registry.deploy(
        args.model, args.version, args.to, deployed_by=args.deployed_by, deployment_config=config
    )
    out.emit(
        deployment,
        f"{args.model}:{deployment['version']} is active on {deployment['deployment_target']} "
        f"(deployment {deployment['id']}, {deployment['deployment_status']})",
    )
    return EXIT_OK


def cmd_rollback(registry: Registry, args, out: Output) -> int:
    if args.deployment is not None:
        result = registry.rollback_deployment(args.deployment, reason=args.reason)
    elif args.model and args.target:
        result = registry.rollback(args.model, args.target, reason=args.reason)
    else:
        raise UsageError("rollback needs MODEL --target TARGET, or --deployment ID.")
    out.emit(result, result.get("detail", "rolled back"))
    return EXIT_OK


def cmd_default(registry: Registry, args, out: Output) -> int:
    version = registry.set_default(args.model, args.version)
    out.emit(version, f"{args.model}:{version['version']} is the default version")
    return EXIT_OK


def cmd_deployments(registry: Registry, args, out: Output) -> int:
    filters = {"model": args.model, "version": args.version, "target": args.target, "status": args.status}
    deployments = _listed(registry.deployments(**filters), args.limit)
    out.emit(deployments, lambda: table(deployments, DEPLOYMENT_COLUMNS))
    return EXIT_OK


def cmd_metrics_log(registry: Registry, args, out: Output) -> int:
    pairs = _pairs(args.metrics, "NAME=VALUE")
    if not pairs:
        raise UsageError("Give at least one NAME=VALUE.")
    extra = {
        key: value
        for key, value in (("source", args.source), ("step", args.step), ("timestamp", args.at))
        if value is not None
    }
    points = [{"name": name, "value": _number(name, value), **extra} for name, value in pairs]
    result = registry.log_metrics(args.model, args.version, points)
    out.emit(result, f"{result['recorded']} point(s) recorded for {args.model}:{args.version}")
    return EXIT_OK


def cmd_metrics_ls(registry: Registry, args, out: Output) -> int:
    filters = {"name": args.name, "source": args.source, "since": args.since, "until": args.until}
    points = _listed(registry.metric_points(args.model, args.version, **filters), args.limit)
    out.emit(points, lambda: table(points, POINT_COLUMNS))
    return EXIT_OK


def cmd_approve(registry: Registry, args, out: Output) -> int:
    approval = registry.approve(args.model, args.version, args.target, comment=args.comment)
    out.emit(approval, f"{args.model}:{args.version} approved for {approval.get('target', args.target)}")
    return EXIT_OK


def cmd_compare(registry: Registry, args, out: Output) -> int:
    result = registry.compare(args.refs, window=args.window, source=args.source, agg=args.agg)
    out.emit(result, lambda: comparison_text(result))
    return EXIT_OK


def comparison_text(result: dict) -> str:
    """Each metric a row, each version a column; * marks the best value, the differences are from the
    first version (the baseline)."""
    asked = [version["asked"] for version in result["versions"]]
    rows = []
    for metric in result["metrics"]:
        row = {"metric": f"{metric['name']} ({metric['direction']})"}
        differences = {d["version"]: d for d in metric["differences"]}
        for ref in asked:
            value = metric["values"][ref]
            text = "-" if value is None else f"{value:.6g}"
            if ref in metric["best"] and len(metric["best"]) < len(asked):
                text += " *"
            relative = differences.get(ref, {}).get("relative")
            if relative is not None:
                text += f" ({relative:+.1%})"
            row[ref] = text
        rows.append(row)
    columns: list[tuple[str, Callable[[dict], Any]]] = [("METRIC", lambda r: r["metric"])]
    columns += [(ref, lambda r, ref=ref: r[ref]) for ref in asked]
    lines = [table(rows, columns)]
    for compat in result["compatibility"]:
        if not compat["drop_in"]:
            lines.append(f"{compat['version']} is not a drop-in replacement for {result['baseline']}")
    return "\n".join(lines)


def cmd_audit(registry: Registry, args, out: Output) -> int:
    filters = {
        "model": args.model,
        "actor": args.actor,
        "action": args.action,
        "since": args.since,
        "until": args.until,
    }
    events = _listed(registry.audit(**filters), args.limit)
    out.emit(events, lambda: table(events, AUDIT_COLUMNS))
    return EXIT_OK


def cmd_models_create(registry: Registry, args, out: Output) -> int:
    model = registry.create_model(
        args.name, args.type, description=args.description or "", is_active=not args.inactive, exist_ok=args.exist_ok
    )
    out.emit(model, f"model {model['name']} ({model['model_type']})")
    return EXIT_OK


def cmd_models_update(registry: Registry, args, out: Output) -> int:
    changes = {
        key: value
        for key, value in {"model_type": args.type, "description": args.description, "is_active": args.active}.items()
        if value is not None
    }
    if not changes:
        raise UsageError("Nothing to change: give --type, --description, --active or --inactive.")
    model = registry.update_model(args.name, **changes)
    out.emit(model, lambda: details(model))
    return EXIT_OK


def cmd_models_delete(registry: Registry, args, out: Output) -> int:
    registry.delete_model(args.name)
    out.emit({"deleted": args.name}, f"deleted model {args.name} with its versions and history")
    return EXIT_OK


def cmd_versions_update(registry: Registry, args, out: Output) -> int:
    changes = {k: v for k, v in _version_fields(args).items() if v is not None}
    metrics = _metrics(args)
    if metrics:
        changes.update(registry.version_fields(metrics=metrics))
    if not changes:
        raise UsageError("Nothing to change.")
    version = registry.update_version(args.model, args.version, **changes)
    out.emit(version, lambda: details(version))
    return EXIT_OK


def cmd_versions_delete(registry: Registry, args, out: Output) -> int:
    registry.delete_version(args.model, args.version)
    out.emit({"deleted": f"{args.model}:{args.version}"}, f"deleted {args.model}:{args.version}")
    return EXIT_OK


# --- the parser -------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (`mvr --json ls` and `mvr ls --json`)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    s = argparse.SUPPRESS
    group.add_argument(
        "--url", default=s, help="the registry's URL (default: $REGISTRY_URL, else http://localhost:8003)"
    )
    group.add_argument("--token", default=s, help="API token (default: $REGISTRY_TOKEN; prefer the variable)")
    group.add_argument("--json", action="store_true", default=s, help="print JSON for scripts")
    group.add_argument("-q", "--quiet", action="store_true", default=s, help="no progress bars or messages")
    group.add_argument("--retries", type=int, default=s, help="retries on network errors, 429 and 5xx (default 5)")
    group.add_argument("--timeout", type=float, default=s, help="seconds to wait for an answer (default 300)")
    return common


def _version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", action="append", metavar="NAME=VALUE", help="a metric; repeat for more")
    parser.add_argument("--metrics-file", metavar="JSON", help="metrics as a JSON object {name: number}")
    for option, dest in (("--accuracy", "accuracy"), ("--precision", "precision"), ("--recall", "recall")):
        parser.add_argument(option, dest=dest, type=_number_type(option), metavar="X")
    parser.add_argument("--f1-score", dest="f1_score", type=_number_type("--f1-score"), metavar="X")
    parser.add_argument("--map", dest="mAP", type=_number_type("--map"), metavar="X", help="mAP")
    parser.add_argument("--input-shape", metavar="SHAPE", help="e.g. 1,3,224,224 (null for any size)")
    parser.add_argument("--output-shape", metavar="SHAPE")
    parser.add_argument("--status", help="training, testing, approved, deprecated or archived")
    notes = parser.add_mutually_exclusive_group()
    notes.add_argument("--notes", help="release notes")
    notes.add_argument("--notes-file", metavar="FILE", help="release notes from a file (e.g. NOTES.md)")
    parser.add_argument("--training-config", metavar="JSON", help="a JSON object, inline or a file")
    parser.add_argument("--deployment-config", metavar="JSON", help="a JSON object, inline or a file")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="mvr",
        description="Command line client of the Model Version Registry.",
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mvr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=EPILOG)
        sub.set_defaults(handler=handler)
        return sub

    command(commands, "health", cmd_health, "the registry's health (exit 1 when unhealthy)")

    sub = command(commands, "ls", cmd_ls, "list models, or the versions of MODEL")
    sub.add_argument("model", nargs="?", metavar="MODEL")
    sub.add_argument("--type", help="models of this model_type")
    sub.add_argument("--status", help="versions with this status")
    sub.add_argument("--format", help="versions in this format")
    sub.add_argument("--limit", type=int, help="at most this many rows")

    sub = command(commands, "show", cmd_show, "a model, or a version: MODEL, MODEL:VERSION or MODEL@TARGET")
    sub.add_argument("ref", metavar="REF")

    sub = command(commands, "push", cmd_push, "register a version and upload its file (safe to re-run)")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    sub.add_argument("file", metavar="FILE", type=Path)
    sub.add_argument("--format", help="onnx, tflite, pytorch, tensorflow_saved_model (guessed from .onnx/.tflite/.pt)")
    sub.add_argument("--tag", action="append", metavar="NAME=VALUE", help="a tag; repeat for more")
    _version_options(sub)
    sub.add_argument("--default", action="store_true", help="make it the model's default version")
    sub.add_argument("--create-model", action="store_true", help="create MODEL first if it does not exist")
    sub.add_argument("--model-type", help="the model_type of a model --create-model creates")
    sub.add_argument("--description", help="the description of a model --create-model creates")

    sub = command(commands, "pull", cmd_pull, "download a version's file, verified; resumes a broken download")
    sub.add_argument("ref", metavar="MODEL[:VERSION|@TARGET]")
    sub.add_argument("-o", "--output", metavar="PATH", help="file or folder (default: the current folder)")

    sub = command(commands, "promote", cmd_promote, "deploy a version to a target (with --dry-run: evaluate only)")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    sub.add_argument("--to", required=True, metavar="TARGET")
    sub.add_argument("--dry-run", action="store_true", help="show the policy evaluation; deploy nothing")
    sub.add_argument("--deployed-by", help="who deploys (local mode only; with a token it is the token's user)")
    sub.add_argument("--config", metavar="JSON", help="deployment_config, inline or a file")

    sub = command(commands, "rollback", cmd_rollback, "roll back what is active for MODEL on a target")
    sub.add_argument("model", nargs="?", metavar="MODEL")
    sub.add_argument("--target", metavar="TARGET")
    sub.add_argument("--deployment", type=int, metavar="ID", help="roll back this deployment instead")
    sub.add_argument("--reason", default="", help="why (kept in the deployment history)")

    sub = command(commands, "default", cmd_default, "make VERSION the default version of MODEL")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")

    metrics = commands.add_parser("metrics", help="a version's metric history").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    sub = command(metrics, "log", cmd_metrics_log, "record metric points (all or none)")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    sub.add_argument("metrics", nargs="+", metavar="NAME=VALUE")
    sub.add_argument("--source", help="where the numbers come from: eval (default), canary, production, a dataset")
    sub.add_argument("--step", type=int, help="a training step")
    sub.add_argument("--at", metavar="TIMESTAMP", help="ISO 8601 (default: now)")
    sub = command(metrics, "ls", cmd_metrics_ls, "a version's points, newest first")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    for name in ("name", "source", "since", "until"):
        sub.add_argument(f"--{name}")
    sub.add_argument("--limit", type=int, help="at most this many rows")

    sub = command(commands, "approve", cmd_approve, "approve VERSION of MODEL for a target (promotion policies)")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    sub.add_argument("--for", dest="target", required=True, metavar="TARGET")
    sub.add_argument("--comment", default="")

    sub = command(commands, "compare", cmd_compare, "versions side by side, the first the baseline (* best)")
    sub.add_argument("refs", nargs="+", metavar="MODEL[:VERSION|@TARGET]", help="2 to 20 versions")
    sub.add_argument("--window", help="compare the metric history of the last 24h, 7d... (not the registered metrics)")
    sub.add_argument("--source", help="with --window: only points from this source (e.g. production)")
    sub.add_argument("--agg", choices=("avg", "min", "max"), help="with --window: how points aggregate (avg)")

    sub = command(commands, "deployments", cmd_deployments, "deployment history, newest first")
    for name in ("model", "version", "target", "status"):
        sub.add_argument(f"--{name}")
    sub.add_argument("--limit", type=int, help="at most this many rows")

    sub = command(commands, "audit", cmd_audit, "the audit trail, newest first (admin role)")
    for name in ("model", "actor", "action", "since", "until"):
        sub.add_argument(f"--{name}")
    sub.add_argument("--limit", type=int, help="at most this many rows")

    models = commands.add_parser("models", help="create, change or delete models").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    sub = command(models, "create", cmd_models_create, "create a model")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--type", required=True, help="classification, object_detection, face_recognition, ...")
    sub.add_argument("--description")
    sub.add_argument("--inactive", action="store_true")
    sub.add_argument("--exist-ok", action="store_true", help="succeed when the model exists already")
    sub = command(models, "update", cmd_models_update, "change a model's type, description or active flag")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--type")
    sub.add_argument("--description")
    active = sub.add_mutually_exclusive_group()
    active.add_argument("--active", dest="active", action="store_const", const=True, default=None)
    active.add_argument("--inactive", dest="active", action="store_const", const=False)
    sub = command(models, "delete", cmd_models_delete, "delete a model with its versions (refused while deployed)")
    sub.add_argument("name", metavar="NAME")

    versions = commands.add_parser("versions", help="change or delete versions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    sub = command(versions, "update", cmd_versions_update, "change a version's status, metrics or notes")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    _version_options(sub)
    sub = command(versions, "delete", cmd_versions_delete, "delete a version (never deployed, not the default)")
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("version", metavar="VERSION")
    return parser


def _report(exc: MvrError, out: Output) -> None:
    print(f"mvr: {exc.message}", file=sys.stderr)
    if isinstance(exc, PolicyRefused):
        for check in exc.checks:
            passed = check.get("passed", check.get("ok"))
            print(f"  [{'pass' if passed else 'FAIL'}] {json.dumps(check)}", file=sys.stderr)
    if out.as_json:
        error: dict[str, Any] = {"error": exc.message, "exit_code": exc.exit_code}
        if isinstance(exc, ApiError):
            error.update(status=exc.status, body=exc.body)
        print(json.dumps(error, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    out = Output(as_json=getattr(args, "json", False), quiet=quiet)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mvr: %(message)s"))
    log = logging.getLogger("mvr")
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.INFO)
    log.propagate = False
    try:
        registry = Registry(
            getattr(args, "url", None),
            getattr(args, "token", None),
            retries=getattr(args, "retries", 5),
            timeout=getattr(args, "timeout", 300.0),
            progress=not quiet and sys.stderr.isatty(),
        )
    except ValueError as exc:
        print(f"mvr: {exc}", file=sys.stderr)
        return UsageError.exit_code
    try:
        with registry:
            return args.handler(registry, args, out)
    except MvrError as exc:
        _report(exc, out)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mvr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
