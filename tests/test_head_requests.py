"""HEAD works wherever GET does (download tools and load balancers use it): the same status and
headers, and no body."""

from __future__ import annotations

import socket

import pytest

from tests.live import running_registry

pytestmark = pytest.mark.django_db


def get_routes(world) -> list[str]:
    deployment = world.staging.pk
    return [
        "/health",
        "/models",
        "/models/resnet",
        "/models/resnet/versions",
        "/models/resnet/versions/v1",
        "/models/resnet/versions/default",
        "/models/resnet/versions/latest",
        "/models/resnet/versions/v1/file",
        "/models/resnet/versions/default/file",
        "/models/resnet/versions/v3/file",  # no file: 404 both ways
        "/models/ghost",
        "/deployments",
        f"/deployments/{deployment}",
        "/audit",
        "/openapi.json",
        "/docs",
    ]


def test_head_answers_like_get_on_every_read_route(api, world):
    for path in get_routes(world):
        got = api.get(path)
        head = api.head(path)
        assert head.status_code == got.status_code, (path, head.status_code, head.content)
        assert head["Content-Type"] == got["Content-Type"], path
        for header in ("ETag", "Content-Length", "Content-Disposition", "Accept-Ranges", "X-Checksum-Sha256"):
            assert head.get(header) == got.get(header), (path, header)
        if hasattr(got, "streaming_content"):
            b"".join(got.streaming_content)


def test_head_of_a_file_says_its_size_and_digest(api, world):
    head = api.head("/models/resnet/versions/v1/file")
    assert head.status_code == 200
    assert head["Content-Length"] == "3" and head["ETag"] == f'"{world.v1.checksum}"'
    ranged = api.head("/models/resnet/versions/v1/file", HTTP_RANGE="bytes=1-")
    assert ranged.status_code == 206 and ranged["Content-Range"] == "bytes 1-2/3"
    assert ranged["Content-Length"] == "2"


def raw_head(base: str, path: str) -> bytes:
    """Everything the server sends back to a HEAD, until it closes the connection."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.gunicorn
def test_a_real_server_sends_headers_and_no_body(tmp_path):
    import requests

    payload = b"weights " * 10_000
    with running_registry(tmp_path, workers=1) as base:
        requests.post(f"{base}/models", json={"name": "m", "model_type": "audio"}, timeout=10)
        made = requests.post(
            f"{base}/models/m/versions", data={"version": "v1", "format": "onnx"}, files={"file": payload}, timeout=10
        )
        assert made.status_code == 201, made.text
        for path, status in (("/health", 200), ("/models/m/versions/v1/file", 200)):
            answer = raw_head(base, path)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(f"HTTP/1.1 {status}".encode()), head
            assert body == b"", (path, len(body))
        assert f"Content-Length: {len(payload)}".encode() in raw_head(base, "/models/m/versions/v1/file")
