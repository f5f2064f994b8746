"""This registry and MLflow's Model Registry, side by side in one run, with the shared harness.

    make bench-mlflow                       (installs MLflow into bench/.venv-mlflow on first use)
    .venv/bin/python bench/compare_mlflow.py [--rounds 3] [--quick] [--w4]

Each round starts both servers fresh (empty SQLite databases and storage folders in a temporary
folder), drives each with bench/registry_bench.py (a stdlib-only HTTP client, vendored from the
shared benchmark kit) and stops it again; rounds alternate which server goes first, and every figure
is the median over the rounds. Both servers run their defaults: MLflow `mlflow server` (4 uvicorn
workers, SQLite, --serve-artifacts), this registry as `make run` starts it (gunicorn with
registry_site/gunicorn.conf.py, SQLite, the local folder). W1 and W2 run with keep-alive and again with
a new connection per request (`--no-keepalive`); W3 (scale) runs once per round with keep-alive.

Prints a Markdown table (ratios are this registry / MLflow, or MLflow / this registry for times) and
writes every raw line to bench/results/compare_mlflow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "bench" / "registry_bench.py"
MLFLOW_VENV = Path(os.environ.get("MLFLOW_VENV", ROOT / "bench" / ".venv-mlflow"))
RESULTS = ROOT / "bench" / "results" / "compare_mlflow.json"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Stop a server and everything it started (MLflow starts a job runner with its own children)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


class Registry:
    name = "registry"
    target = "seed"

    def start(self, workdir: Path) -> tuple[subprocess.Popen, str]:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir / 'registry.sqlite3'}",
            "REGISTRY_DATA_DIR": str(workdir / "data"),
            "REGISTRY_STORAGE_DIR": str(workdir / "storage"),
            "REGISTRY_BIND": f"127.0.0.1:{port}",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        python = ROOT / ".venv" / "bin" / "python"
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        log = open(workdir / "registry.log", "wb")
        process = subprocess.Popen(
            [python, "-m", "gunicorn", "--config", "registry_site/gunicorn.conf.py", "registry_site.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", process)
        return process, url


class MLflow:
    name = "mlflow"
    target = "mlflow"

    def start(self, workdir: Path) -> tuple[subprocess.Popen, str]:
        port = free_port()
        log = open(workdir / "mlflow.log", "wb")
        process = subprocess.Popen(
            [
                MLFLOW_VENV / "bin" / "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination",
                str(workdir / "artifacts"),
                "--serve-artifacts",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", process)
        return process, url


def run_harness(server, workdir: Path, workloads: str, extra: list[str]) -> list[dict]:
    process, url = server.start(workdir)
    try:
        command = [
            sys.executable,
            str(HARNESS),
            "--target",
            server.target,
            "--url",
            url,
            "--server-pid",
            str(process.pid),
            "--workloads",
            workloads,
            "--big-file",
            str(workdir.parent / "w4.bin"),
            *extra,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        stop(process)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for line in lines:
        line["server"] = server.name
    return lines


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(lines: list[dict]) -> dict:
    """{(server, metric): median over rounds}"""
    series: dict[tuple[str, str], list] = {}

    def add(server, metric, value):
        series.setdefault((server, metric), []).append(value)

    for line in lines:
        server, mode = line["server"], "ka" if line.get("keepalive", True) else "nka"
        if line["workload"] == "W1":
            add(server, f"w1_{mode}_vps", line["versions_per_s"])
            add(server, f"w1_{mode}_cpu", line["server_cpu_ms_per_version"])
            add(server, f"w1_{mode}_errors", line["errors"])
        elif line["workload"] == "W2":
            add(server, f"w2_{mode}_rps", line["req_per_s"])
            add(server, f"w2_{mode}_cpu", line["server_cpu_ms_per_req"])
            add(server, f"w2_{mode}_get_version_p99", line["ops"]["get_version"]["p99_ms"])
            add(server, f"w2_{mode}_errors", line["errors"])
        elif line["workload"] == "W3":
            for point, values in line["points"].items():
                kind = point.split("_")[0] if not point.startswith("small_model_after") else "many"
                add(server, f"w3_{kind}_walk_s", values["walk_all_versions_pages50"]["s"])
                for op in ("get_model", "get_version", "list_versions_first50"):
                    add(server, f"w3_{kind}_{op}_p50", values[op]["p50_ms"])
        elif line["workload"] == "W4":
            add(server, "w4_upload_MBps", line["upload_MBps"])
            add(server, "w4_download_MBps", line["download_MBps"])
            add(server, "w4_peak_rss_mb", line.get("server_max_VmHWM_mb"))
    return {key: median(values) for key, values in series.items()}


ROWS = [
    # (label, metric, higher is better)
    ("W1 register, keep-alive: versions/s", "w1_ka_vps", True),
    ("W1 register, new connection each: versions/s", "w1_nka_vps", True),
    ("W1 server CPU ms per version (keep-alive)", "w1_ka_cpu", False),
    ("W2 read mix, keep-alive: req/s", "w2_ka_rps", True),
    ("W2 read mix, new connection each: req/s", "w2_nka_rps", True),
    ("W2 get-version p99 ms (keep-alive)", "w2_ka_get_version_p99", False),
    ("W2 get-version p99 ms (new connection each)", "w2_nka_get_version_p99", False),
    ("W2 server CPU ms per request (keep-alive)", "w2_ka_cpu", False),
    ("W3 walk all pages, big model: s", "w3_big_walk_s", False),
    ("W3 get-version p50 ms, small model", "w3_small_get_version_p50", False),
    ("W3 get-version p50 ms, big model", "w3_big_get_version_p50", False),
    ("W3 get-model p50 ms, big model", "w3_big_get_model_p50", False),
    ("W3 list first page p50 ms, big model", "w3_big_list_versions_first50_p50", False),
    ("W4 upload MB/s", "w4_upload_MBps", True),
    ("W4 download MB/s", "w4_download_MBps", True),
    ("W4 server peak RSS MB (max VmHWM)", "w4_peak_rss_mb", False),
]


def table(summary: dict) -> str:
    out = ["| workload | MLflow | this registry | ratio |", "|---|---|---|---|"]
    for label, metric, higher_better in ROWS:
        ours, theirs = summary.get(("registry", metric)), summary.get(("mlflow", metric))
        if ours is None and theirs is None:
            continue
        ratio = ""
        if ours and theirs:
            ratio = f"{(ours / theirs if higher_better else theirs / ours):.1f}×"
        out.append(
            f"| {label} | {theirs if theirs is not None else '-'} | {ours if ours is not None else '-'} | {ratio} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one round")
    parser.add_argument("--w4", action="store_true", help="also the 1 GiB upload/download (W4)")
    parser.add_argument("--no-w3", action="store_true", help="skip the scale workload (W3)")
    parser.add_argument("--only", choices=["registry", "mlflow"], help="run one server only")
    args = parser.parse_args()

    if not (MLFLOW_VENV / "bin" / "mlflow").exists() and args.only != "registry":
        sys.exit(f"MLflow is not installed in {MLFLOW_VENV}: run `make bench-mlflow` (it installs it first).")
    sizes = ["-n", "2000", "-t", "15"]
    w3_sizes: list[str] = []
    if args.quick:
        args.rounds = 1
        sizes = ["-n", "200", "-t", "5"]
        w3_sizes = ["--small", "20", "--big", "500", "--models", "50", "--reps", "10"]
    servers = [Registry(), MLflow()]
    if args.only:
        servers = [s for s in servers if s.name == args.only]
    lines: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]
            for server in order:
                for keepalive in (True, False):
                    workloads = "w1,w2"
                    if keepalive and not args.no_w3:
                        workloads += ",w3"
                    if keepalive and args.w4:
                        workloads += ",w4"
                    workdir = Path(tmp) / f"{server.name}-{round_no}-{'ka' if keepalive else 'nka'}"
                    workdir.mkdir()
                    extra = [*sizes, *(w3_sizes if "w3" in workloads else [])]
                    if not keepalive:
                        extra.append("--no-keepalive")
                    print(
                        f"round {round_no + 1}/{args.rounds}: {server.name} {workloads} "
                        f"({'keep-alive' if keepalive else 'new connection each'})",
                        file=sys.stderr,
                        flush=True,
                    )
                    lines += run_harness(server, workdir, workloads, extra)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = summarize(lines)
    RESULTS.write_text(json.dumps({"lines": lines, "rounds": args.rounds}, indent=1))
    print(f"\nMedian of {args.rounds} round(s); machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n")
    print(table(summary))


if __name__ == "__main__":
    main()
