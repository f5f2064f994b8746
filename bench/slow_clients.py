"""Slow clients against the registry: latencies and a large upload while hundreds of connections trickle.

    .venv/bin/python bench/slow_clients.py [--slow 200] [--seconds 30] [--size-mib 1024] [--rounds 3] [--baseline]

Starts the registry as `make run` serves it, but in production mode (tokens) and with its default limits
(README, "Serving slow clients"), on a free loopback port with its own SQLite file and storage folder;
seeds a model with 60 versions; and measures, first on the quiet server and then with --slow connections
held open:

  GET /health, and GET /models/bench/versions with a token (a 50-row page): p50 and p99, each request
      on a new connection, as a load balancer's check or a new client makes it
  a --size-mib upload (the seed's multipart form, with a token): MB/s, --rounds times on the quiet server
      and under the slow connections, alternately, the probes going on during both

The slow connections are a third each: headers trickled (one line every 5 s, as the issue's probe did),
a multipart body trickled at 16 bytes/s with a valid token, and the same without a token. One that the
server cuts off is opened again 0.1 s later, so --slow stay open throughout. --baseline serves
them as before this change (gunicorn's plain gthread worker, no body rate check) for comparison.

Results go to bench/results/slow_clients[_baseline].json and are printed beside bench/file_transfer.py's
last figures (bench/results/file_transfer.json), when there are any.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from file_transfer import MIB, multipart_upload, rate  # noqa: E402  (sets up Django, as tests.live needs)

from tests.live import running_registry  # noqa: E402

PRODUCTION = {
    "REGISTRY_ENV": "production",
    "DJANGO_SECRET_KEY": "bench-" + "x" * 60,
    "REGISTRY_ALLOWED_HOSTS": "localhost",
    "REGISTRY_SSL_REDIRECT": "false",
}
# What main served before: gunicorn's own gthread worker, and no minimum body rate.
BASELINE = {"GUNICORN_CMD_ARGS": "--worker-class gthread", "REGISTRY_BODY_GRACE": "1000000"}
PROBE_TIMEOUT = 5.0
UPLOAD_PATIENCE = 120.0
KINDS = ("headers", "body with token", "body without token")


# --- the slow clients -------------------------------------------------------------------------------
class SlowClients:
    """`count` connections, kept open from an asyncio loop in a thread of its own."""

    def __init__(self, host: str, port: int, token: str, count: int) -> None:
        self.host, self.port, self.token, self.count = host, port, token, count
        self.open = 0
        self.endings: Counter = Counter()  # (kind, how it ended)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _request(self, kind: str) -> tuple[bytes, bytes, float]:
        """What to send at once, what to trickle, and the pause between trickled pieces."""
        if kind == "headers":
            return b"GET /health HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: 1\r\n" * 10_000, 5.0
        auth = f"Authorization: Bearer {self.token}\r\n" if kind == "body with token" else ""
        boundary = "slow-bench"
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\nslow\r\n'.encode()
        body += b"x" * 1_000_000
        head = (
            f"POST /models/bench/versions HTTP/1.1\r\nHost: localhost\r\n{auth}"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode(), body, 1.0

    async def _client(self, kind: str) -> None:
        first, rest, pause = self._request(kind)
        piece = 16 if kind != "headers" else len(b"X-Slow: 1\r\n")
        await asyncio.sleep(random.uniform(0, 5))  # spread out, so they are not all cut off at once
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.endings[(kind, "connect failed")] += 1
                await asyncio.sleep(0.5)
                continue
            self.open += 1
            answer = asyncio.ensure_future(reader.readline())
            ending = "still open at the end"
            try:
                writer.write(first)
                for offset in range(0, len(rest), piece):
                    if self._stop.is_set():
                        break
                    writer.write(rest[offset : offset + piece])
                    await writer.drain()
                    done, _ = await asyncio.wait([answer], timeout=pause)
                    if done:
                        status = answer.result().split(b" ")[1:2]
                        ending = f"answered {status[0].decode()}" if status else "closed by the server"
                        break
            except OSError:
                ending = "reset by the server"
            finally:
                self.open -= 1
                answer.cancel()
                writer.close()
            self.endings[(kind, ending)] += 1
            await asyncio.sleep(0.1)

    async def _main(self) -> None:
        clients = [asyncio.ensure_future(self._client(KINDS[number % len(KINDS)])) for number in range(self.count)]
        while not self._stop.is_set():
            await asyncio.sleep(0.2)
        await asyncio.gather(*clients, return_exceptions=True)


# --- measuring -------------------------------------------------------------------------------------
def probe(host: str, port: int, path: str, token: str) -> float | None:
    """Milliseconds for one GET on a new connection; None if it did not answer 200 in time."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        ok = response.status == 200
    except OSError:
        ok = False
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000 if ok else None


class Poller:
    """Alternates /health and the 50-row list every 0.1 s in a thread, until stopped."""

    PATHS = {"health": ("/health", ""), "list": ("/models/bench/versions?page_size=50", None)}

    def __init__(self, host: str, port: int, token: str, clients: SlowClients | None = None) -> None:
        self.host, self.port, self.token, self.clients = host, port, token, clients
        self.samples: dict[str, list[float | None]] = {name: [] for name in self.PATHS}
        self.open_counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for name in itertools.cycle(self.PATHS):
            if self._stop.is_set():
                return
            path, token = self.PATHS[name]
            self.samples[name].append(probe(self.host, self.port, path, self.token if token is None else token))
            if self.clients is not None:
                self.open_counts.append(self.clients.open)
            time.sleep(0.1)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        result = {}
        for name, values in self.samples.items():
            answered = sorted(v for v in values if v is not None)
            failed = len(values) - len(answered)
            # A probe that failed counts as slower than every answer.
            ranked = answered + [float("inf")] * failed
            result[name] = {
                "requests": len(values),
                "failed_or_over_5s": failed,
                "p50_ms": percentile(ranked, 50),
                "p99_ms": percentile(ranked, 99),
                "max_ms": ranked[-1] if ranked else None,
            }
        if self.open_counts:
            result["slow_connections_open"] = {"min": min(self.open_counts), "mean": statistics.mean(self.open_counts)}
        return result


def percentile(ranked: list[float], p: int) -> float | None:
    if not ranked:
        return None
    return ranked[min(len(ranked) - 1, round(p / 100 * (len(ranked) - 1)))]


def timed_upload(base: str, token: str, version: str, path: Path) -> float | None:
    """MB/s of one upload; None if it failed or did not finish within UPLOAD_PATIENCE seconds (a starved
    server never gives it a thread; the thread left waiting ends when the server is stopped)."""
    result: list[float] = []

    def upload() -> None:
        try:
            seconds = multipart_upload(base, "bench", version, path, f"Authorization: Bearer {token}\r\n")
            result.append(rate(path.stat().st_size, seconds))
        except (OSError, AssertionError) as exc:
            print(f"  upload failed: {exc}", flush=True)

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    thread.join(UPLOAD_PATIENCE)
    return result[0] if result else None


def make_token(work: Path, env: dict[str, str]) -> str:
    env = {
        **os.environ,
        **env,
        "DATABASE_URL": f"sqlite:///{work / 'registry.sqlite3'}",
        "REGISTRY_DATA_DIR": str(work / "data"),
        "REGISTRY_STORAGE_DIR": str(work / "storage"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    grant = [sys.executable, "manage.py", "grant_role", "bench", "admin", "--create-user"]
    subprocess.run(grant, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    command = [sys.executable, "manage.py", "create_token", "bench", "--scope", "all"]
    return subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip()


def median_of(speeds: list[float | None]) -> float | None:
    """The median, a failed upload counting as the slowest."""
    if not speeds or all(speed is None for speed in speeds):
        return None
    return statistics.median(speed if speed is not None else 0.0 for speed in speeds)


def fmt_speed(speed: float | None) -> str:
    return "did not finish" if not speed else f"{speed:.0f}"


def show(title: str, summary: dict) -> None:
    print(f"\n{title}")
    for name in ("health", "list"):
        s = summary[name]
        fmt = lambda v: "timeout" if v in (None, float("inf")) else f"{v:.0f} ms"  # noqa: E731
        print(
            f"  {name:<7} p50 {fmt(s['p50_ms']):>8}  p99 {fmt(s['p99_ms']):>8}  max {fmt(s['max_ms']):>8}"
            f"  ({s['requests']} requests, {s['failed_or_over_5s']} failed or over 5 s)"
        )
    if "slow_connections_open" in summary:
        held = summary["slow_connections_open"]
        print(f"  slow connections open: min {held['min']}, mean {held['mean']:.0f}")
    if "upload_MBps" in summary:
        print("  uploads (MB/s): " + ", ".join(fmt_speed(speed) for speed in summary["upload_MBps"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open")
    parser.add_argument("--seconds", type=int, default=30, help="how long to measure latencies under them")
    parser.add_argument("--size-mib", type=int, default=1024, help="the concurrent upload's size")
    parser.add_argument("--rounds", type=int, default=3, help="uploads on the quiet server and under the clients")
    parser.add_argument("--baseline", action="store_true", help="serve as before: plain gthread, no body rate")
    args = parser.parse_args()
    env = {**PRODUCTION, **(BASELINE if args.baseline else {})}
    results: dict = {"slow": args.slow, "size_MiB": args.size_mib, "baseline": args.baseline}
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, cores: {os.cpu_count()}", flush=True)

    with tempfile.TemporaryDirectory(dir=ROOT / "data" if (ROOT / "data").exists() else None) as tmp:
        work = Path(tmp)
        source = work / "model.bin"
        with open(source, "wb") as handle:
            block = os.urandom(MIB)
            for i in range(args.size_mib):
                handle.write(block[:-8] + i.to_bytes(8, "little"))
        workers = min(4, (os.cpu_count() or 1) + 1)  # what `make run` starts
        with running_registry(work, extra_env=env, workers=workers) as base:
            host, port = base.removeprefix("http://").split(":")
            port = int(port)
            token = make_token(work, env)
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            conn = http.client.HTTPConnection(host, port)
            conn.request("POST", "/models", json.dumps({"name": "bench", "model_type": "classification"}), auth)
            created = conn.getresponse()
            assert created.status == 201, created.read()
            created.read()
            for number in range(60):
                conn.request(
                    "POST", "/models/bench/versions", json.dumps({"version": f"0.{number}", "format": "onnx"}), auth
                )
                created = conn.getresponse()
                assert created.status == 201, created.read()
                created.read()
            conn.close()

            print(f"quiet server: {args.seconds // 2} s of probes ...", flush=True)
            with Poller(host, port, token) as quiet:
                time.sleep(args.seconds // 2)
            results["quiet"] = quiet.summary()

            clients = SlowClients(host, port, token, args.slow)
            clients.start()
            time.sleep(5)
            print(f"{args.slow} slow connections: {args.seconds} s of probes ...", flush=True)
            with Poller(host, port, token, clients) as slow:
                time.sleep(args.seconds)
            clients.stop()
            results["slow"] = slow.summary()
            endings = clients.endings

            # The upload's speed drifts with the disk and the machine's other work: alternate uploads on
            # the quiet server and under the slow clients, the probes going on during both.
            quiet_speeds, slow_speeds = [], []
            for round_no in range(args.rounds):
                print(f"upload round {round_no + 1}/{args.rounds}: quiet, then under the slow clients", flush=True)
                os.sync()
                with Poller(host, port, token) as during_quiet:
                    quiet_speeds.append(timed_upload(base, token, f"quiet{round_no}", source))
                clients = SlowClients(host, port, token, args.slow)
                clients.start()
                time.sleep(5)
                os.sync()
                with Poller(host, port, token, clients) as during_slow:
                    slow_speeds.append(timed_upload(base, token, f"slow{round_no}", source))
                clients.stop()
                endings += clients.endings
            results["quiet_and_upload"] = {**during_quiet.summary(), "upload_MBps": quiet_speeds}
            results["slow_and_upload"] = {**during_slow.summary(), "upload_MBps": slow_speeds}
            results["slow_connection_endings"] = {f"{kind}: {how}": n for (kind, how), n in sorted(endings.items())}

    show("quiet server", results["quiet"])
    show(f"{args.slow} slow connections held open", results["slow"])
    show("quiet server, during the last upload", results["quiet_and_upload"])
    show(f"{args.slow} slow connections, during the last upload", results["slow_and_upload"])
    quiet_speed = median_of(results["quiet_and_upload"]["upload_MBps"])
    slow_speed = median_of(results["slow_and_upload"]["upload_MBps"])
    print(
        f"\n{args.size_mib} MiB upload, median of {args.rounds} (MB/s): quiet {fmt_speed(quiet_speed)}, "
        f"under {args.slow} slow connections {fmt_speed(slow_speed)}"
    )
    if quiet_speed and slow_speed:
        results["upload_speed_kept"] = slow_speed / quiet_speed
        print(f"  the upload kept {results['upload_speed_kept']:.0%} of its quiet speed")
    print("how the slow connections ended:")
    for what, n in results["slow_connection_endings"].items():
        print(f"  {n:6}  {what}")
    transfer = ROOT / "bench" / "results" / "file_transfer.json"
    if transfer.exists():
        median = json.loads(transfer.read_text())["median"]
        print("bench/file_transfer.py, last run (MB/s): " + ", ".join(f"{k} {v:.0f}" for k, v in median.items()))
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "slow_clients_baseline.json" if args.baseline else "slow_clients.json"
    (out / name).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
