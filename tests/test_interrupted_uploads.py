"""Uploads that go wrong on the wire, against a real gunicorn: a client that stops sending, and one
that announces more than the registry accepts. Neither may leave a row, a stored file or a staged
temporary file, and the second must get its 413 without the server waiting for the body."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.live import running_registry

LIMIT = 64 * 1024

# One server for the module's tests, so they run on one xdist worker.
pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("interrupted_uploads")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("aborts")
    with running_registry(workdir, extra_env={"REGISTRY_MAX_UPLOAD_BYTES": str(LIMIT)}) as base:
        yield base, workdir / "storage"


def _files(storage):
    return sorted(p for p in storage.rglob("*") if p.is_file())


def _raw_request(base: str, head: str, body: bytes, *, close_write: bool) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_client_that_stops_sending_leaves_nothing(live):
    base, storage = live
    assert requests.post(f"{base}/models", json={"name": "cut", "model_type": "audio"}).status_code == 201
    assert requests.post(f"{base}/models/cut/versions", json={"version": "v1", "format": "onnx"}).status_code == 201
    head = (
        "PUT /models/cut/versions/v1/file HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 50000\r\nConnection: close\r\n\r\n"
    )
    reply = _raw_request(base, head, b"x" * 20000, close_write=True)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"cut short" in reply
    time.sleep(0.2)
    assert _files(storage) == []  # no stored file and nothing staged in storage/.incoming
    assert requests.get(f"{base}/models/cut/versions/v1").json()["checksum"] is None


def test_an_announced_oversized_upload_is_refused_at_once(live):
    base, storage = live
    requests.post(f"{base}/models", json={"name": "big", "model_type": "audio"})
    head = (
        "POST /models/big/versions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: multipart/form-data; boundary=XYZ\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    started = time.monotonic()
    # Only the head is sent: the answer must come without the 100 MiB body.
    reply = _raw_request(base, head, b"", close_write=False)
    # ...and the server ends the connection right after it, rather than keeping it alive and reading
    # the body it refused as if it were the next request.
    assert time.monotonic() - started < 2
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert reply.endswith(b'"limit": 65536}')
    assert _files(storage) == []
    assert requests.get(f"{base}/models/big/versions").json()["results"] == []
