#!/usr/bin/env python3
"""CPU per request of the API's hot endpoints, in process (issue #12): what the application itself
costs, without the HTTP server, the client or the noise of other processes on the machine.

Django's test Client drives the full stack (middleware, DRF, serializers, the database) against a fresh
SQLite file (or --pg-url): one model with --versions versions of 4 KiB files registered through the API,
the first one its default. Each endpoint is called --warmup times, then --requests times, and the table
gives the process CPU time per request (time.process_time, so waiting on a disk or a database server is
not counted; on PostgreSQL the server's own CPU is not either) and the median wall time.

    .venv/bin/python bench/api_cpu.py                        # this checkout
    .venv/bin/python bench/api_cpu.py --compare main         # REV checked out aside, both measured, one table
    .venv/bin/python bench/api_cpu.py --profile get_version  # where the CPU goes (cProfile, top 40)

--compare REV checks REV out with `git worktree add --detach` into a temporary folder, runs this same file
against it (--root) in a subprocess, then against this checkout, alternating --rounds times, and prints
the median of each. Results also go to bench/results/api_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
RESULTS = HERE / "bench" / "results" / "api_cpu.json"
MODEL = "bench-model"
ENDPOINTS = ("get_version", "list_versions_50", "get_default", "list_models_50", "get_model", "post_version")
# A deploy's dry run without a promotion policy and with one of every rule (issue #10 §4): what the
# evaluation costs. Not in the default set: a registry before policies has no dry run (--only them).
POLICY_ENDPOINTS = ("dry_run_no_policy", "dry_run_policy")
# A/B assignment (issue #11 §2) with a running two-variant experiment on the target: not in the default set.
EXPERIMENT_ENDPOINTS = ("assignment",)
EVERY_RULE = {
    "required_status": "training",
    "min_metrics": {"accuracy": 0.5, "auc": 0.5},
    "max_regressions": [{"metric": "accuracy", "max_drop": 0.1}],
    "require_format_check": True,
    "require_verified_file": True,
    "approvals_required": 1,
    "soak_target": "staging",
    "soak_hours": 1,
}


def _multipart(label: str, payload: bytes) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        "version": label,
        "format": "onnx",
        "accuracy": "0.9",
        "input_shape": "[1,3,224,224]",
        "output_shape": "[1,1000]",
        "file": SimpleUploadedFile("model.onnx", payload, content_type="application/octet-stream"),
    }


def _deploy(target: str, *, version: str = "1.0.1", dry_run: bool = True) -> dict:
    return {"model_name": MODEL, "version": version, "deployment_target": target, "dry_run": dry_run}


def measure(args: argparse.Namespace) -> dict:
    """In this process: Django on a fresh database, the data made through the API, each endpoint timed."""
    root = Path(args.root).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="api-cpu-"))
    os.environ["REGISTRY_DATA_DIR"] = str(workdir / "data")
    os.environ["REGISTRY_STORAGE_DIR"] = str(workdir / "storage")
    os.environ["DATABASE_URL"] = args.pg_url or f"sqlite:///{workdir / 'registry.sqlite3'}"
    os.environ["REGISTRY_ENV"] = "local"
    os.environ["DJANGO_SETTINGS_MODULE"] = "registry_site.settings"
    os.chdir(root)
    sys.path.insert(0, str(root))
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.test import Client

    for handler in logging.getLogger().handlers:  # keep formatting the request log lines, write them nowhere
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    try:
        from registry_site.startup import prepare

        prepare()
    except ImportError:
        pass
    for folder in (workdir / "data", workdir / "storage" / ".incoming"):
        folder.mkdir(parents=True, exist_ok=True)
    if args.pg_url:
        call_command("flush", "--noinput", verbosity=0)
    call_command("migrate", verbosity=0)

    client = Client(HTTP_HOST="localhost")
    payload = os.urandom(4096)
    response = client.post("/models", {"name": MODEL, "model_type": "classification"}, content_type="application/json")
    assert response.status_code == 201, response.content
    for i in range(args.versions):
        response = client.post(f"/models/{MODEL}/versions", _multipart(f"1.0.{i}", payload))
        assert response.status_code == 201, response.content
    for i in range(60):
        client.post(
            "/models", {"name": f"other-{i:03d}", "model_type": "classification"}, content_type="application/json"
        )

    if args.only and set(args.only.split(",")) & set(POLICY_ENDPOINTS):
        client.post("/targets", {"name": "bench-plain"}, content_type="application/json")
        client.post("/deploy", _deploy("production", version="1.0.0", dry_run=False), content_type="application/json")
        response = client.put("/targets/production/policy", EVERY_RULE, content_type="application/json")
        assert response.status_code == 200, response.content

    if args.only and "assignment" in args.only.split(",") or args.profile == "assignment":
        client.post("/deploy", _deploy("staging", version="1.0.0", dry_run=False), content_type="application/json")
        variants = [{"version": "1.0.0", "weight": 8000, "is_control": True}, {"version": "1.0.1", "weight": 2000}]
        response = client.post(
            f"/models/{MODEL}/targets/staging/experiments",
            {"name": "bench", "variants": variants},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        response = client.post(f"/experiments/{response.json()['id']}/start")
        assert response.status_code == 200, response.content

    counter = iter(range(10**9))
    units = iter(range(10**9))
    requests = {
        "get_version": lambda: client.get(f"/models/{MODEL}/versions/1.0.{min(7, args.versions - 1)}"),
        "list_versions_50": lambda: client.get(f"/models/{MODEL}/versions", {"page_size": "50"}),
        "get_default": lambda: client.get(f"/models/{MODEL}/versions/default"),
        "list_models_50": lambda: client.get("/models", {"page_size": "50"}),
        "get_model": lambda: client.get(f"/models/{MODEL}"),
        "post_version": lambda: client.post(f"/models/{MODEL}/versions", _multipart(f"2.0.{next(counter)}", payload)),
        "dry_run_no_policy": lambda: client.post("/deploy", _deploy("bench-plain"), content_type="application/json"),
        "dry_run_policy": lambda: client.post("/deploy", _deploy("production"), content_type="application/json"),
        "assignment": lambda: client.get(f"/models/{MODEL}/targets/staging/assignment", {"key": f"u{next(units)}"}),
    }
    chosen = [
        name
        for name in ENDPOINTS + POLICY_ENDPOINTS + EXPERIMENT_ENDPOINTS
        if (not args.only and name in ENDPOINTS) or (args.only and name in args.only.split(","))
    ]
    if args.profile:
        import cProfile
        import pstats

        call = requests[args.profile]
        for _ in range(args.warmup):
            call()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            call()
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats(args.sort).print_stats(args.lines)
        if args.callees:
            stats.print_callees(args.callees)
        return {}
    results = {}
    for name in chosen:
        call = requests[name]
        for _ in range(args.warmup):
            assert call().status_code in (200, 201)
        walls = []
        cpu_start = time.process_time()
        for _ in range(args.requests):
            started = time.perf_counter()
            response = call()
            walls.append(time.perf_counter() - started)
            assert response.status_code in (200, 201), (name, response.status_code)
        cpu = time.process_time() - cpu_start
        results[name] = {
            "cpu_ms": round(cpu * 1000 / args.requests, 3),
            "wall_p50_ms": round(statistics.median(walls) * 1000, 3),
        }
    return results


def run_child(root: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--json"]
    command += ["--requests", str(args.requests), "--warmup", str(args.warmup), "--versions", str(args.versions)]
    if args.only:
        command += ["--only", args.only]
    if args.pg_url:
        command += ["--pg-url", args.pg_url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(HERE), help="the checkout to measure (default: this one)")
    parser.add_argument("--compare", metavar="REV", help="also measure git revision REV, checked out aside")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: alternate this many times")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--versions", type=int, default=120, help="at least 1")
    parser.add_argument(
        "--only", help="comma-separated endpoints: " + ", ".join(ENDPOINTS + POLICY_ENDPOINTS + EXPERIMENT_ENDPOINTS)
    )
    parser.add_argument("--pg-url", help="PostgreSQL instead of SQLite (its tables are emptied)")
    parser.add_argument(
        "--profile",
        choices=ENDPOINTS + POLICY_ENDPOINTS + EXPERIMENT_ENDPOINTS,
        help="print a cProfile of one endpoint instead",
    )
    parser.add_argument("--sort", default="cumulative", help="with --profile: cumulative, tottime...")
    parser.add_argument("--lines", type=int, default=40, help="with --profile: how many functions to list")
    parser.add_argument("--callees", help="with --profile: also what the functions matching this pattern call")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.json or args.profile:
        results = measure(args)
        if args.json:
            print(json.dumps(results))
        return
    if not args.compare:
        runs = {"this checkout": [run_child(Path(args.root), args) for _ in range(args.rounds)]}
    else:
        aside = Path(tempfile.mkdtemp(prefix="api-cpu-rev-")) / "checkout"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(aside), args.compare], check=True)
        os.symlink(HERE / ".venv", aside / ".venv")
        runs = {args.compare: [], "this checkout": []}
        try:
            for _ in range(args.rounds):
                runs[args.compare].append(run_child(aside, args))
                runs["this checkout"].append(run_child(Path(args.root), args))
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(aside)], check=False)
    medians = {
        label: {
            name: {key: statistics.median(run[name][key] for run in results) for key in results[0][name]}
            for name in results[0]
        }
        for label, results in runs.items()
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs, "medians": medians, "args": vars(args)}, indent=1))
    labels = list(medians)
    print(f"\nmedian of {args.rounds} run(s) x {args.requests} requests; load {os.getloadavg()[0]:.2f}\n")
    header = " | ".join(f"{label}: CPU ms / wall p50 ms" for label in labels)
    print(f"| endpoint | {header} |")
    print("|---" * (len(labels) + 1) + "|")
    for name in medians[labels[0]]:
        cells = " | ".join(f"{m[name]['cpu_ms']:.2f} / {m[name]['wall_p50_ms']:.2f}" for m in medians.values())
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
