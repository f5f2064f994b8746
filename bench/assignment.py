#!/usr/bin/env python3
"""Latency of GET /models/{m}/targets/{t}/assignment under a fixed arrival rate (issue #11 §2: p99 under
10 ms at 500 assignments/s), against a live gunicorn started as `make run` starts it (tests.live), with a
running two-variant experiment on the target.

The load is open-loop: request i is due at start + i / rate whatever the earlier ones did, and its
latency counts from when it was due (so a stalled server is not hidden by a client that waits for it:
no coordinated omission). --threads client threads share the schedule, each on its own keep-alive
connection. A peer endpoint, GET /models/{m}/versions/{v} (the registry's hottest read, one query), is
measured the same way in the same run, so the figure can be read as a ratio on a shared machine.

    .venv/bin/python bench/assignment.py                     # 500/s for 10 s, SQLite
    .venv/bin/python bench/assignment.py --rate 200 --seconds 5
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/assignment.py

The client runs on the same machine and takes CPU from the server: `uptime` is printed before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import file_transfer  # noqa: E402, F401  (sets up Django, as tests.live needs)
import requests  # noqa: E402

from tests.live import running_registry  # noqa: E402

MODEL = "bench_ab"


def setup(base: str) -> None:
    requests.post(f"{base}/models", json={"name": MODEL, "model_type": "classification"}).raise_for_status()
    for version in ("v1", "v2"):
        requests.post(
            f"{base}/models/{MODEL}/versions",
            data={"version": version, "format": "onnx"},
            files={"file": (f"{version}.onnx", f"weights {version}".encode())},
        ).raise_for_status()
    requests.post(
        f"{base}/deploy", json={"model_name": MODEL, "version": "v1", "deployment_target": "staging"}
    ).raise_for_status()
    made = requests.post(
        f"{base}/models/{MODEL}/targets/staging/experiments",
        json={
            "name": "bench",
            "variants": [{"version": "v1", "weight": 8000, "is_control": True}, {"version": "v2", "weight": 2000}],
        },
    )
    made.raise_for_status()
    requests.post(f"{base}/experiments/{made.json()['id']}/start").raise_for_status()


def load(base: str, paths: list[str], rate: float, seconds: float, threads: int) -> dict:
    """Send len(paths)-cycling GETs at `rate` per second for `seconds`; latencies from each one's due time."""
    host, port = base.removeprefix("http://").split(":")
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cpu_before = server_cpu_seconds()
    start = time.perf_counter() + 0.5

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        mine = []
        for i in range(offset, total, threads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("GET", paths[i % len(paths)])
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            mine.append(time.perf_counter() - due)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)
        conn.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = server_cpu_seconds() - cpu_before
    ranked = sorted(latencies)

    def pct(p: float) -> float:
        return ranked[min(len(ranked) - 1, int(p / 100 * len(ranked)))] * 1000

    return {
        "requests": total,
        "errors": errors[0],
        "achieved_per_s": round(total / elapsed, 1),
        "p50_ms": round(pct(50), 2),
        "p90_ms": round(pct(90), 2),
        "p99_ms": round(pct(99), 2),
        "max_ms": round(ranked[-1] * 1000, 2),
        "server_cpu_ms_per_request": round(cpu * 1000 / total, 2),
    }


def server_cpu_seconds() -> float:
    """CPU time (user + system) of every process this one started, and theirs: the gunicorn master and
    its workers. The client's own threads are this process, left out."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, pending = 0.0, list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        total += times.get(pid, 0.0)
        pending.extend(children.get(pid, []))
    return total


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=16, help="client threads (keep-alive connections)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()
    print("before:", uptime(), f"({os.cpu_count()} cores)")
    results = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-ab-") as work,
        running_registry(Path(work), workers=args.workers) as base,
    ):
        setup(base)
        assignment = [f"/models/{MODEL}/targets/staging/assignment?key=user-{i}" for i in range(10_000)]
        peer = [f"/models/{MODEL}/versions/v1"]
        load(base, assignment, min(args.rate, 100), 1.0, args.threads)  # warm every worker and thread
        load(base, peer, min(args.rate, 100), 1.0, args.threads)
        results["assignment"] = load(base, assignment, args.rate, args.seconds, args.threads)
        results["peer: GET version"] = load(base, peer, args.rate, args.seconds, args.threads)
    print("after: ", uptime())
    print(
        f"{'endpoint':20} {'req':>6} {'err':>4} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'CPU ms':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:20} {r['requests']:>6} {r['errors']:>4} {r['achieved_per_s']:>7} {r['p50_ms']:>7} "
            f"{r['p90_ms']:>7} {r['p99_ms']:>7} {r['max_ms']:>7} {r['server_cpu_ms_per_request']:>7}"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
