"""A real registry for end-to-end tests: gunicorn in a subprocess, as `make run` starts it, on a free
loopback port, with its own database (a SQLite file, or a fresh PostgreSQL database when the suite runs
on PostgreSQL) and its own storage folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "--config",
    "registry_site/gunicorn.conf.py",
    "registry_site.wsgi:application",
]


# What the test process has that a server must not inherit, as `make run` starts it: the test settings,
# and the metrics folder a test that loads gunicorn.conf.py in process may have named.
_NOT_INHERITED = frozenset({"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"})

# The gunicorn arbiter's process id behind each base URL running_registries started.
SERVER_PIDS: dict[str, int] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Ask a server to stop, and make it if it does not."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def _database(workdir: Path):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        yield f"sqlite:///{workdir / 'registry.sqlite3'}"
        return
    name = f"registry_e2e_{uuid.uuid4().hex[:12]}"
    admin_url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_registry(
    workdir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    workers: int = 2,
    setup: Callable[[dict[str, str]], None] | None = None,
):
    """Start the registry under gunicorn and yield its base URL; stop it afterwards. `setup` is called with
    the server's environment once its database is migrated, e.g. to make API tokens with manage.py."""
    with running_registries(workdir, servers=1, extra_env=extra_env, workers=workers, setup=setup) as bases:
        yield bases[0]


@contextmanager
def running_registries(
    workdir: Path,
    *,
    servers: int,
    extra_env: dict[str, str] | None = None,
    workers: int = 2,
    setup: Callable[[dict[str, str]], None] | None = None,
):
    """Several app servers (separate gunicorn processes, each on its own port) sharing one database and
    one storage, as behind a load balancer; yields their base URLs."""
    with _database(workdir) as database_url:
        env = {
            **{name: value for name, value in os.environ.items() if name not in _NOT_INHERITED},
            "DATABASE_URL": database_url,
            "REGISTRY_DATA_DIR": str(workdir / "data"),
            "REGISTRY_STORAGE_DIR": str(workdir / "storage"),
            "WEB_CONCURRENCY": str(workers),
            **(extra_env or {}),
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        if setup is not None:
            setup(env)
        started: list[tuple[subprocess.Popen, IO[bytes]]] = []
        bases: list[str] = []
        try:
            for n in range(servers):
                log_name = "gunicorn.log" if n == 0 else f"gunicorn-{n}.log"
                port = free_port()
                log = open(workdir / log_name, "wb")
                server = subprocess.Popen(
                    GUNICORN,
                    cwd=ROOT,
                    env={**env, "REGISTRY_BIND": f"127.0.0.1:{port}"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                started.append((server, log))
                bases.append(_wait_until_healthy(f"http://127.0.0.1:{port}", server, workdir / log_name))
                SERVER_PIDS[bases[-1]] = server.pid
            yield bases
        finally:
            for server, log in started:
                stop(server)
                log.close()
            for base in bases:
                SERVER_PIDS.pop(base, None)


def _wait_until_healthy(base: str, server: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                return base
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"registry did not start:\n{log.read_text()}")
        time.sleep(0.1)


def all_at_once(calls):
    """Run the calls in threads released together, and return their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))
