"""A real registry for end-to-end tests: gunicorn in a subprocess, as `make run` starts it, on a free
loopback port, with its own database (a SQLite file, or a fresh PostgreSQL database when the suite runs
on PostgreSQL) and its own storage folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


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
    with _database(workdir) as database_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REGISTRY_DATA_DIR": str(workdir / "data"),
            "REGISTRY_STORAGE_DIR": str(workdir / "storage"),
            "WEB_CONCURRENCY": str(workers),
            **(extra_env or {}),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        if setup is not None:
            setup(env)
        port = free_port()
        env["REGISTRY_BIND"] = f"127.0.0.1:{port}"
        log = open(workdir / "gunicorn.log", "wb")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "registry_site/gunicorn.conf.py",
                "registry_site.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry did not start:\n{(workdir / 'gunicorn.log').read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            stop(server)
            log.close()
