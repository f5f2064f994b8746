"""Uploads that go wrong on the wire, against a real gunicorn: a client that stops sending, and one
that announces more than the registry accepts. Neither may leave a row, a stored file, a staged
temporary file or an audit event, and the second must get its 413 without the server waiting for the
body. Every door that takes a file is tried: the seed's multipart POST, multipart and raw PUT .../file,
and the admin's form."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.live import ROOT, running_registry

LIMIT = 64 * 1024

# One server for the module's tests, so they run on one xdist worker.
pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("interrupted_uploads")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("aborts")
    with running_registry(workdir, extra_env={"REGISTRY_MAX_UPLOAD_BYTES": str(LIMIT)}, setup=_make_admin_user) as base:
        yield base, workdir / "storage"


ADMIN_PASSWORD = "cut-off-uploads-admin"


def _make_admin_user(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "root", "--email", "r@x.test"],
        cwd=ROOT,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        check=True,
        capture_output=True,
    )


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


BOUNDARY = "cutoffboundary7"


def _multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts += [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, file_name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _head(method: str, path: str, length: int, content_type: str, extra: str = "") -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n{extra}\r\n"
    )


def _state(base: str, storage, model: str) -> tuple:
    """What a refused request must not have changed: the model's versions, its audit trail, the files."""
    versions = requests.get(f"{base}/models/{model}/versions").json()["results"]
    events = requests.get(f"{base}/audit?model={model}").json()["results"]
    return (
        [(v["version"], v["checksum"], v["is_default"]) for v in versions],
        [e["action"] for e in events],
        _files(storage),
    )


PAYLOAD = bytes(range(256)) * 160  # 40 KiB, under the module's 64 KiB limit


@pytest.mark.parametrize("cut", ["short_of_content_length", "no_closing_boundary"])
def test_a_cut_off_multipart_registration_changes_nothing_and_the_retry_succeeds(live, cut):
    base, storage = live
    model = f"form_{cut}"
    assert requests.post(f"{base}/models", json={"name": model, "model_type": "audio"}).status_code == 201
    before = _state(base, storage, model)
    whole = _multipart({"version": "4.0.0", "format": "onnx"}, [("file", "m.onnx", PAYLOAD)])
    if cut == "short_of_content_length":  # the client gave up part way, as a killed curl does
        head, body = (
            _head("POST", f"/models/{model}/versions", len(whole), f"multipart/form-data; boundary={BOUNDARY}"),
            whole[:20000],
        )
    else:  # every announced byte arrived, but the form never ends
        body = whole[: -len(f"--{BOUNDARY}--\r\n")]
        head = _head("POST", f"/models/{model}/versions", len(body), f"multipart/form-data; boundary={BOUNDARY}")
    reply = _raw_request(base, head, body, close_write=True)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"cut short" in reply and b'"file"' in reply
    time.sleep(0.2)
    assert _state(base, storage, model) == before  # no version, no audit event, no stored or staged file

    retry = requests.post(
        f"{base}/models/{model}/versions",
        data={"version": "4.0.0", "format": "onnx"},
        files={"file": ("m.onnx", PAYLOAD)},
    )
    assert retry.status_code == 201, retry.text
    assert retry.json()["is_default"] is True and retry.json()["file_size"] == len(PAYLOAD)


def test_a_cut_off_multipart_file_upload_changes_nothing_and_the_retry_succeeds(live):
    base, storage = live
    requests.post(f"{base}/models", json={"name": "cut_put", "model_type": "audio"})
    assert requests.post(f"{base}/models/cut_put/versions", json={"version": "v1", "format": "onnx"}).status_code == 201
    before = _state(base, storage, "cut_put")
    whole = _multipart({}, [("file", "m.onnx", PAYLOAD)])
    head = _head("PUT", "/models/cut_put/versions/v1/file", len(whole), f"multipart/form-data; boundary={BOUNDARY}")
    reply = _raw_request(base, head, whole[:30000], close_write=True)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"cut short" in reply
    time.sleep(0.2)
    assert _state(base, storage, "cut_put") == before

    retry = requests.put(f"{base}/models/cut_put/versions/v1/file", files={"file": ("m.onnx", PAYLOAD)})
    assert retry.status_code == 200, retry.text
    assert retry.json()["file_size"] == len(PAYLOAD)


def test_a_cut_off_raw_upload_changes_nothing_and_the_retry_succeeds(live):
    base, storage = live
    requests.post(f"{base}/models", json={"name": "cut_raw", "model_type": "audio"})
    requests.post(f"{base}/models/cut_raw/versions", json={"version": "v1", "format": "onnx"})
    before = _state(base, storage, "cut_raw")
    head = _head("PUT", "/models/cut_raw/versions/v1/file", len(PAYLOAD), "application/octet-stream")
    reply = _raw_request(base, head, PAYLOAD[:30000], close_write=True)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    time.sleep(0.2)
    assert _state(base, storage, "cut_raw") == before
    retry = requests.put(
        f"{base}/models/cut_raw/versions/v1/file",
        data=PAYLOAD,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert retry.status_code == 200, retry.text


def test_two_file_parts_are_refused_naming_the_field(live):
    base, storage = live
    requests.post(f"{base}/models", json={"name": "two_files", "model_type": "audio"})
    before = _state(base, storage, "two_files")
    response = requests.post(
        f"{base}/models/two_files/versions",
        data={"version": "v1", "format": "onnx"},
        files=[("file", ("a.onnx", b"first file")), ("file", ("b.onnx", b"second file"))],
    )
    assert response.status_code == 400, response.text
    assert list(response.json()["errors"]) == ["file"]
    time.sleep(0.2)
    assert _state(base, storage, "two_files") == before


def _admin_session(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    login = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": "root", "password": ADMIN_PASSWORD, "next": "/admin/"},
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert login.url.endswith("/admin/"), login.text[:500]
    return session


def test_a_cut_off_admin_upload_changes_nothing_and_the_retry_succeeds(live):
    base, storage = live
    model_id = requests.post(f"{base}/models", json={"name": "cut_admin", "model_type": "audio"}).json()["id"]
    session = _admin_session(base)
    add_url = "/admin/models_app/modelversion/add/"
    page = session.get(f"{base}{add_url}")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    fields = {
        "csrfmiddlewaretoken": token,
        "model": str(model_id),
        "version": "v1",
        "format": "onnx",
        "status": "training",
    }
    before = _state(base, storage, "cut_admin")

    whole = _multipart(fields, [("file", "m.onnx", PAYLOAD)])
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    head = _head(
        "POST",
        add_url,
        len(whole),
        f"multipart/form-data; boundary={BOUNDARY}",
        f"Cookie: {cookies}\r\nReferer: {base}{add_url}\r\n",
    )
    reply = _raw_request(base, head, whole[:25000], close_write=True)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    time.sleep(0.2)
    assert _state(base, storage, "cut_admin") == before

    retry = session.post(
        f"{base}{add_url}", data=fields, files={"file": ("m.onnx", PAYLOAD)}, headers={"Referer": f"{base}{add_url}"}
    )
    assert retry.status_code == 200, retry.text[:500]  # redirected to the list after saving
    versions = requests.get(f"{base}/models/cut_admin/versions").json()["results"]
    assert [(v["version"], v["file_size"]) for v in versions] == [("v1", len(PAYLOAD))]
