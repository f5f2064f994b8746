"""What a new TCP connection per request costs on this machine, and the most any server stack here can
answer that way: the ceiling beside the `--no-keepalive` figures of bench/compare_mlflow.py (issue #12).

Three servers, each started fresh on loopback and driven by the shared harness's own client
(bench/registry_bench.py's Client: http.client, the same threads) with keep-alive and then with a new
connection per request, --clients threads for --seconds each:

- `wsgi-hello`: a WSGI application that answers a fixed 200-byte JSON body and does nothing else, served
  by gunicorn with this registry's worker class, workers, threads and keep-alive
  (registry_site/gunicorn.conf.py's values): the ceiling of this serving stack, with no Django at all;
- `registry /health`: this registry as `make run` starts it (one database query and a storage check);
- `mlflow /health`: MLflow as bench/compare_mlflow.py starts it (4 uvicorn workers).

    .venv/bin/python bench/connection_ceiling.py [--seconds 10] [--rounds 3]

Prints requests/s, the median of --rounds rounds (servers alternate order), and writes the raw figures to
bench/results/connection_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_mlflow import MLflow, Registry, free_port, stop, wait_healthy  # noqa: E402
from registry_bench import Client  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "connection_ceiling.json"
BODY = json.dumps({"status": "healthy", "padding": "x" * 160}).encode()


def hello(environ, start_response):
    """The wsgi-hello application."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


class WSGIHello:
    name = "wsgi-hello"
    path = "/health"

    def start(self, workdir: Path) -> tuple[subprocess.Popen, str]:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("REGISTRY_ENV", "local")
        config: dict = {}
        saved = dict(os.environ)
        exec((ROOT / "registry_site" / "gunicorn.conf.py").read_text(), config)  # the registry's values
        os.environ.clear()
        os.environ.update(saved)  # without the metrics folder the file makes for its own server
        port = free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "registry_site.settings", "PYTHONPATH": str(ROOT)}
        env["REGISTRY_DATA_DIR"] = str(workdir / "data")
        process = subprocess.Popen(
            [
                ROOT / ".venv" / "bin" / "python",
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(config["workers"]),
                "--threads",
                str(config["threads"]),
                "--worker-class",
                config["worker_class"],
                "--keep-alive",
                str(config["keepalive"]),
                "bench.connection_ceiling:hello",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(workdir / "hello.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", process)
        return process, url


class RegistryHealth(Registry):
    name = "registry /health"
    path = "/health"


class MLflowHealth(MLflow):
    name = "mlflow /health"
    path = "/health"


def drive(url: str, path: str, *, keepalive: bool, clients: int, seconds: float) -> float:
    """Requests per second of `clients` threads asking GET path as fast as they can."""
    Client.keepalive = keepalive
    client = Client(url)
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            client.request("GET", path)
            counts[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    servers = [WSGIHello(), RegistryHealth(), MLflowHealth()]
    figures: dict[str, dict[str, list[float]]] = {s.name: {"keep-alive": [], "new connection": []} for s in servers}
    for number in range(args.rounds):
        for server in servers if number % 2 == 0 else servers[::-1]:
            with tempfile.TemporaryDirectory(prefix="ceiling-") as folder:
                process, url = server.start(Path(folder))
                try:
                    drive(url, server.path, keepalive=True, clients=args.clients, seconds=1)  # warm up
                    for mode, keepalive in (("keep-alive", True), ("new connection", False)):
                        rate = drive(url, server.path, keepalive=keepalive, clients=args.clients, seconds=args.seconds)
                        figures[server.name][mode].append(rate)
                        print(f"round {number + 1}: {server.name}, {mode}: {rate:.1f} req/s", file=sys.stderr)
                finally:
                    stop(process)
    print(f"\nGET, {args.clients} clients, {args.seconds:g} s each, median of {args.rounds} rounds (req/s)\n")
    print("| server | keep-alive | new connection per request | new / keep-alive |")
    print("|---|---|---|---|")
    for name, modes in figures.items():
        kept, new = statistics.median(modes["keep-alive"]), statistics.median(modes["new connection"])
        print(f"| {name} | {kept:.1f} | {new:.1f} | {new / kept:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "rounds": figures}, indent=1))


if __name__ == "__main__":
    main()
