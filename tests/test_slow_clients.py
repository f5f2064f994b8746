"""Slow clients are answered 408 and cannot hold the server's threads; uploads at normal speed are never cut.

The registry runs under gunicorn as `make run` serves it (registry_site/gunicorn_worker.py holds requests
that are still arriving in its event loop; registry_site/body_rate.py checks the rest of a body), with
its limits shortened so the suite stays fast, and with one worker of two threads, so that two slow
clients holding threads would be enough to starve it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import time

import pytest
import requests

from tests.live import running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("slow_clients")]

LIMITS = {
    "REGISTRY_HEADER_TIMEOUT": "1",
    "REGISTRY_BODY_GRACE": "1",
    "REGISTRY_BODY_MIN_RATE": "100000",  # bytes/s
    "GUNICORN_THREADS": "2",
}
BOUNDARY = "slow-client-boundary"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("slow"), extra_env=LIMITS, workers=1) as url:
        assert requests.post(f"{url}/models", json={"name": "slow", "model_type": "audio"}).status_code == 201
        yield url


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on `sock` (after any 100 Continue)."""
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
        head, sep, body = reply.partition(b"\r\n\r\n")
        if sep and b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                break
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def send_slowly(sock: socket.socket, pieces, pause: float) -> None:
    """Send the pieces with a pause after each, until they are sent or the server answers."""
    for piece in pieces:
        if select.select([sock], [], [], 0)[0]:  # an answer (or EOF) is waiting: the caller reads it
            return
        try:
            sock.sendall(piece)
        except OSError:  # the server answered and closed: the caller reads the answer
            return
        time.sleep(pause)


def multipart(version: str, payload: bytes) -> tuple[bytes, bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="version"\r\n\r\n{version}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="format"\r\n\r\nonnx\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
    ).encode()
    body = head + payload + f"\r\n--{BOUNDARY}--\r\n".encode()
    request = (
        f"POST /models/slow/versions HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return request, body


def test_headers_sent_too_slowly_get_408(base):
    lines = [b"GET /health HTTP/1.1\r\n", b"Host: localhost\r\n"] + [b"X-Slow: 1\r\n"] * 20 + [b"\r\n"]
    with connect(base) as sock:
        started = time.monotonic()
        send_slowly(sock, lines, pause=0.3)
        status, _ = read_response(sock)
    assert status == 408
    assert time.monotonic() - started < 4


def test_a_head_too_long_to_wait_for_gets_431(base):
    with connect(base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-Long: " + b"x" * 70_000)
        status, answer = read_response(sock)
    assert status == 431, answer


def test_a_body_trickled_from_the_start_gets_408_before_reaching_a_thread(base):
    request, body = multipart("trickled", b"x" * 100_000)
    with connect(base) as sock:
        sock.sendall(request)
        send_slowly(sock, [body[i : i + 16] for i in range(0, 2000, 16)], pause=0.1)
        status, answer = read_response(sock)
    assert status == 408
    assert "start of its body" in answer["detail"]
    assert requests.get(f"{base}/models/slow/versions/trickled").status_code == 404


def test_a_body_that_slows_down_after_the_grace_period_gets_408_and_stores_nothing(base):
    request, body = multipart("slowed", os.urandom(400_000))
    fast, rest = body[:50_000], body[50_000:]
    with connect(base) as sock:
        started = time.monotonic()
        sock.sendall(request + fast)
        send_slowly(sock, [rest[i : i + 512] for i in range(0, len(rest), 512)], pause=0.05)
        status, answer = read_response(sock)
    assert status == 408, answer
    assert "too slowly" in answer["detail"]
    assert time.monotonic() - started < 5
    assert requests.get(f"{base}/models/slow/versions/slowed").status_code == 404


def test_a_raw_upload_that_trickles_gets_408_and_leaves_the_version_without_a_file(base):
    assert requests.post(f"{base}/models/slow/versions", json={"version": "raw-slow", "format": "onnx"}).ok
    payload = os.urandom(300_000)
    request = (
        "PUT /models/slow/versions/raw-slow/file HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    with connect(base) as sock:
        sock.sendall(request + payload[:40_000])
        send_slowly(sock, [payload[i : i + 256] for i in range(40_000, len(payload), 256)], pause=0.05)
        status, answer = read_response(sock)
    assert status == 408, answer
    version = requests.get(f"{base}/models/slow/versions/raw-slow").json()
    assert version["file_size"] in (None, 0) and not version["checksum"]
    # The thread that served it is free again, and the version can still get its file.
    retry = requests.put(
        f"{base}/models/slow/versions/raw-slow/file",
        data=payload,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert retry.status_code == 200, retry.text


def test_an_upload_at_normal_speed_is_never_cut(base):
    """Longer than every limit (header timeout, grace period), at a steady rate above the minimum, with
    a pause that its earlier speed pays for."""
    payload = os.urandom(3 * 1024 * 1024)
    request, body = multipart("steady", payload)
    pieces = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    with connect(base) as sock:
        started = time.monotonic()
        sock.sendall(request)
        for number, piece in enumerate(pieces):
            sock.sendall(piece)
            time.sleep(1.0 if number == 10 else 0.05)
        status, answer = read_response(sock)
    assert time.monotonic() - started > 3
    assert status == 201, answer
    assert answer["checksum"] == hashlib.sha256(payload).hexdigest()


def test_a_large_fast_upload_goes_through(base):
    payload = os.urandom(1024 * 1024) * 64  # 64 MiB
    response = requests.post(
        f"{base}/models/slow/versions",
        data={"version": "large", "format": "onnx"},
        files={"file": ("m.onnx", payload)},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["checksum"] == hashlib.sha256(payload).hexdigest()


def test_an_expect_100_continue_upload_gets_one_100_and_its_answer(base):
    payload = os.urandom(200_000)
    request, body = multipart("expecting", payload)
    request = request.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1)
    with connect(base) as sock:
        sock.sendall(request)
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, answer = read_response(sock)
    assert status == 201, answer
    assert answer["checksum"] == hashlib.sha256(payload).hexdigest()


def held_open(base: str, count: int) -> list[socket.socket]:
    """`count` connections that started a request and are sending it slowly: half stopped in their
    headers, half in their multipart bodies."""
    request, body = multipart("held", b"x" * 100_000)
    sockets = []
    for number in range(count):
        sock = connect(base)
        sock.sendall(
            b"POST /models/slow/versions HTTP/1.1\r\nHost: localhost\r\n" if number % 2 else request + body[:64]
        )
        sockets.append(sock)
    return sockets


def test_slow_clients_do_not_starve_the_server(base):
    """Twenty slow clients against two threads: before, /health waited for them; now it answers at once."""
    sockets = held_open(base, 20)
    try:
        time.sleep(0.3)
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{base}/health", timeout=5).status_code == 200
            assert requests.get(f"{base}/models/slow/versions", timeout=5).status_code == 200
            assert time.monotonic() - started < 2  # a starved server does not answer within 5 s
    finally:
        for sock in sockets:
            sock.close()


def test_a_refused_upload_whose_client_keeps_sending_does_not_hold_a_thread(tmp_path):
    """Production mode, no token: the 401 is sent before the body is read. The rest of the body (whose
    multipart part headers end like a request head) is dropped by the event loop, not read by a thread
    as if it were the next request."""
    production = {
        **LIMITS,
        "GUNICORN_THREADS": "1",
        "REGISTRY_ENV": "production",
        "DJANGO_SECRET_KEY": "slow-clients-test-key-" + "x" * 40,
        "REGISTRY_ALLOWED_HOSTS": "localhost",
        "REGISTRY_PUBLIC_READ": "true",
        "REGISTRY_SSL_REDIRECT": "false",
    }
    with running_registry(tmp_path, extra_env=production, workers=1) as url:
        request, body = multipart("refused", b"y" * 100_000)
        with connect(url) as sock:
            sock.sendall(request + body[:20_000])
            status, _ = read_response(sock)
            assert status == 401
            for offset in range(20_000, 40_000, 4_000):  # the client goes on sending, slowly
                try:
                    sock.sendall(body[offset : offset + 4_000])
                except OSError:
                    break
                started = time.monotonic()
                assert requests.get(f"{url}/health", timeout=5).status_code == 200
                assert time.monotonic() - started < 2  # a starved server does not answer within 5 s
                time.sleep(0.2)
