"""`make run` serves the registry and runs the webhook worker beside it; stopping it (Ctrl-C, or a TERM to
its shell) stops both, and a worker that dies takes the server down with it rather than leaving webhooks
silently unsent."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.live import ROOT, free_port
from tests.webhook_support import receiver

# make run serves SQLite in a data folder of its own (the test unsets DATABASE_URL).
pytestmark = [pytest.mark.gunicorn, pytest.mark.subprocess, pytest.mark.own_sqlite]


def _make_run(tmp_path, port: int) -> subprocess.Popen:
    env = {**os.environ, "REGISTRY_DATA_DIR": str(tmp_path / "data"), "REGISTRY_WEBHOOK_POLL_SECONDS": "1"}
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    # -o: the shared virtual environment is taken as installed (no pip run from a test).
    return subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.run-stamp", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / "make-run.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it
    )


def _wait_healthy(base: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _workers(pgid: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-g", str(pgid), "-f", r"python[0-9.]* manage.py deliver_webhooks$"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


def test_make_run_delivers_webhooks_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    make = _make_run(tmp_path, port)
    log = tmp_path / "make-run.log"
    try:
        _wait_healthy(base, make, log)
        with receiver() as hook:
            assert requests.post(f"{base}/webhooks", json={"url": hook.url, "events": ["model.created"]}).ok
            assert requests.post(f"{base}/models", json={"name": "announced", "model_type": "audio"}).ok
            hook.wait_for(1, timeout=30)
        assert len(_workers(make.pid)) == 1
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        make.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group_alive(make.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(make.pid), subprocess.run(["ps", "-g", str(make.pid)], capture_output=True).stdout
    finally:
        if _group_alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)


def test_a_dead_worker_stops_make_run(tmp_path):
    port = free_port()
    make = _make_run(tmp_path, port)
    log = tmp_path / "make-run.log"
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", make, log)
        [worker] = _workers(make.pid)
        os.kill(worker, signal.SIGKILL)
        assert make.wait(timeout=60) != 0
        assert "the server or the webhook worker ended" in log.read_text()
        deadline = time.monotonic() + 30
        while _group_alive(make.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(make.pid)
    finally:
        if _group_alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
