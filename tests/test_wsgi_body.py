"""registry_site.wsgi reads request bodies straight from gunicorn's socket; a connection must still
carry the next request (keep-alive, pipelining) exactly where gunicorn expects it."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket

import pytest
import requests

from tests.live import running_registry

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: several socket reads

# One server for the module's tests, so they run on one xdist worker.
pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("wsgi_body")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("wsgi-body"), workers=1) as base:
        requests.post(f"{base}/models", json={"name": "keepalive", "model_type": "audio"})
        yield base


def test_keep_alive_connection_after_raw_and_multipart_uploads(live):
    host, port = live.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(
        "POST",
        "/models/keepalive/versions",
        json.dumps({"version": "raw", "format": "onnx"}),
        {"Content-Type": "application/json"},
    )
    created = conn.getresponse()
    assert created.status == 201 and created.read()
    conn.request("PUT", "/models/keepalive/versions/raw/file", PAYLOAD, {"Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["checksum"] == hashlib.sha256(PAYLOAD).hexdigest()

    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\nform\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="format"\r\n\r\nonnx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
        ).encode()
        + PAYLOAD[::-1]
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn.request(
        "POST", "/models/keepalive/versions", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    response = conn.getresponse()
    assert response.status == 201
    assert json.loads(response.read())["checksum"] == hashlib.sha256(PAYLOAD[::-1]).hexdigest()

    conn.request("GET", "/models/keepalive/versions/raw/file")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == PAYLOAD
    conn.close()


def test_pipelined_requests_after_a_raw_upload(live):
    requests.post(f"{live}/models/keepalive/versions", json={"version": "piped", "format": "onnx"})
    host, port = live.removeprefix("http://").split(":")
    put = (
        "PUT /models/keepalive/versions/piped/file HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(PAYLOAD)}\r\n\r\n"
    ).encode() + PAYLOAD
    get = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(put + get)  # both at once: the second request follows the body on the wire
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:500]
    assert b'"status": "healthy"' in reply or b'"status":"healthy"' in reply


def test_a_raw_upload_of_many_chunks_is_stored_byte_for_byte(live):
    """More chunks than the receive buffers cycle through (registry_site.wsgi readinto, the sink's
    writer thread): a buffer reused too early would corrupt the file and its digest would differ."""
    payload = b"".join(i.to_bytes(4, "little") * (256 * 1024) for i in range(9))  # 9 MiB, every MiB distinct
    requests.post(f"{live}/models/keepalive/versions", json={"version": "many", "format": "onnx"})
    response = requests.put(
        f"{live}/models/keepalive/versions/many/file",
        data=payload,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["checksum"] == hashlib.sha256(payload).hexdigest()
    assert requests.get(f"{live}/models/keepalive/versions/many/file").content == payload
