"""Connections spread over gunicorn's workers (registry_site/gunicorn_worker.py, ACCEPT_HANDOFF).

The registry runs under gunicorn as `make run` serves it, with three workers. Which worker holds a
connection is read from /proc: the server's end of the client's socket, and the worker that has it open.
"""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path

import pytest

from registry_site.gunicorn_worker import STALE_AFTER
from tests.live import SERVER_PIDS, running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.own_sqlite]


def workers_of(arbiter: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == arbiter:
                children.append(int(entry.name))
    return sorted(children)


def holder(conn: http.client.HTTPConnection, server_port: int, workers: list[int]) -> int | None:
    """The worker holding the server's end of `conn`, if one does."""
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    for pid in workers:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except FileNotFoundError:
            continue
    return None


def ask(conn: http.client.HTTPConnection) -> str:
    """One request on the connection (reopened if the server closed it); its response's Connection header."""
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    return (response.getheader("Connection") or "").lower()


def test_clients_that_all_landed_on_one_worker_spread_over_the_others(tmp_path):
    with running_registry(
        tmp_path, workers=3, extra_env={"DATABASE_URL": f"sqlite:///{tmp_path / 'spread.sqlite3'}"}
    ) as base:
        port = int(base.rsplit(":", 1)[1])
        workers = workers_of(SERVER_PIDS[base])
        assert len(workers) == 3
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=15) for _ in range(3)]
        # Two workers stopped.
        for pid in workers[1:]:
            os.kill(pid, signal.SIGSTOP)
        try:
            # Just stopped, they still look idle: the worker left offers a new connection to them for
            # ACCEPT_HANDOFF, then takes it itself.
            first = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            started = time.monotonic()
            ask(first)
            assert time.monotonic() - started < STALE_AFTER - 0.5  # not kept waiting until they look stuck
            assert holder(first, port, workers) == workers[0]
            first.close()
            time.sleep(STALE_AFTER)  # until it sees them stuck, and stops offering them connections
            for conn in conns:
                ask(conn)
            assert [holder(conn, port, workers) for conn in conns] == [workers[0]] * 3
        finally:
            for pid in workers[1:]:
                os.kill(pid, signal.SIGCONT)

        # Going on with the same clients, the busy worker closes connections after their responses,
        # and the clients' new connections go to the idle workers: one each.
        closed = 0
        deadline = time.monotonic() + 20
        while True:
            closed += sum(ask(conn) == "close" for conn in conns)
            held = [holder(conn, port, workers) if conn.sock is not None else None for conn in conns]
            if sorted(held, key=str) == sorted(workers):
                break
            assert time.monotonic() < deadline, f"still held by {held} after {closed} closed connections"
            time.sleep(0.05)
        assert closed >= 2

        # Spread, they stay where they are: no more connections closed.
        for _ in range(10):
            assert [ask(conn) for conn in conns] == ["keep-alive"] * 3
        assert sorted(holder(conn, port, workers) for conn in conns) == workers
        for conn in conns:
            conn.close()
    # Stopping three workers at once: the arbiter handles their exits without an error.
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
