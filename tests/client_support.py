"""What the client's tests share: running the installed `mvr` command, and a TCP proxy that can break a
transfer in the middle (as a flaky network or load balancer would) and counts the bytes it passed."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from tests.live import ROOT, running_registries

MVR = Path(sys.executable).parent / "mvr"


def run_mvr(
    *args: str, url: str | None = None, token: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess:
    """The installed console command, as a CI job runs it: no terminal, settings from the environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    if url:
        environment["REGISTRY_URL"] = url
    if token:
        environment["REGISTRY_TOKEN"] = token
    environment.update(env)
    return subprocess.run(
        [str(MVR), *args], capture_output=True, text=True, env=environment, cwd=cwd, stdin=subprocess.DEVNULL
    )


@contextmanager
def production_registry(workdir: Path, users: dict[str, str], *, workers: int = 2, extra_env: dict | None = None):
    """A live registry in production mode (tokens required), with one token per user: {user: role}.
    Yields (base URL, {role: token})."""
    with production_registries(workdir, users, servers=1, workers=workers, extra_env=extra_env) as (bases, tokens):
        yield bases[0], tokens


@contextmanager
def production_registries(
    workdir: Path, users: dict[str, str], *, servers: int, workers: int = 2, extra_env: dict | None = None
):
    """production_registry with several app servers on one database and storage: yields ([base URLs], tokens)."""
    tokens: dict[str, str] = {}

    def make_tokens(env: dict[str, str]) -> None:
        for user, role in users.items():
            for command in (["grant_role", user, role, "--create-user"], ["create_token", user, "--scope", "all"]):
                made = subprocess.run(
                    [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True
                )
                assert made.returncode == 0, made.stderr
            tokens[role] = made.stdout.strip()

    env = {
        "REGISTRY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "REGISTRY_ALLOWED_HOSTS": "registry.example.com",
        "REGISTRY_SSL_REDIRECT": "false",  # the tests speak plain HTTP on loopback, with no TLS proxy
        **(extra_env or {}),
    }
    with running_registries(workdir, servers=servers, extra_env=env, workers=workers, setup=make_tokens) as bases:
        yield bases, tokens


def mvr_json(*args: str, url: str, **kwargs) -> dict | list:
    result = run_mvr("--json", *args, url=url, **kwargs)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


class Proxy:
    """A loopback TCP proxy in front of `upstream` (http://host:port).

    - `cut_down_after`: end the first `cuts` connections once they have passed this many bytes to the
      client (a download broken off mid-body);
    - `cut_up_after`: the same for bytes sent to the server (an upload broken off);
    - `canned`: answers sent, one per new connection, before anything is forwarded (a 503 from a load
      balancer); the request is read and dropped.
    It records every request head it forwards and the bytes it passed each way."""

    def __init__(
        self,
        upstream: str,
        *,
        cut_down_after: int | None = None,
        cut_up_after: int | None = None,
        cuts: int = 1,
        canned: list[bytes] | None = None,
    ) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_down_after = cut_down_after
        self.cut_up_after = cut_up_after
        self.cuts = cuts
        self.canned = list(canned or [])
        self.downstream = 0
        self.upstream_bytes = 0
        self.heads: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()

    def reset_counts(self) -> None:
        with self._lock:
            self.downstream = self.upstream_bytes = 0
            self.heads.clear()

    def ranges(self) -> list[str]:
        return [m.group(1) for head in self.heads for m in [re.search(r"(?im)^range: *(\S+)", head)] if m]

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts > 0:
                self.cuts -= 1
                return True
            return False

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            canned = self.canned.pop(0) if self.canned else None
        if canned is not None:
            head = b""
            while b"\r\n\r\n" not in head and (data := client.recv(65536)):
                head += data
            self.heads.append(head.split(b"\r\n\r\n")[0].decode("latin-1"))
            client.sendall(canned)
            client.close()
            return
        server = socket.create_connection(self.upstream)
        up = threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True)
        up.start()
        self._pump(server, client, "down")
        up.join(timeout=5)

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        limit = self.cut_down_after if direction == "down" else self.cut_up_after
        passed = 0
        cut = False
        try:
            while data := source.recv(256 * 1024):
                if direction == "up" and passed < 65536:
                    for head in re.findall(rb"[A-Z]+ /\S* HTTP/1\.1\r\n.*?\r\n\r\n", data, re.S):
                        self.heads.append(head.decode("latin-1"))
                if limit is not None and passed + len(data) > limit and (cut or self._take_cut()):
                    cut = True
                    data = data[: max(0, limit - passed)]
                sink.sendall(data)
                passed += len(data)
                with self._lock:
                    if direction == "down":
                        self.downstream += len(data)
                    else:
                        self.upstream_bytes += len(data)
                if cut:
                    break
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def http_answer(status: str, body: dict, **headers: str) -> bytes:
    """A whole HTTP/1.1 answer, for Proxy's `canned`."""
    payload = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
