"""registry_site.gunicorn_body reads upload bodies straight from gunicorn's socket, through gunicorn's
private reader classes. It is written against one gunicorn version: these tests fail loudly on any
other, and check on a real gunicorn request that gunicorn.conf.py's hook installs it and that the
connection is left exactly where gunicorn's parser expects the next request."""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import gunicorn
import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http.parser import RequestParser

from registry_site import gunicorn_body

ROOT = Path(__file__).resolve().parent.parent


def test_written_for_the_gunicorn_that_is_installed_and_pinned():
    pinned = re.search(r"^gunicorn==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert gunicorn.__version__ == gunicorn_body.WRITTEN_FOR == pinned, (
        f"registry_site/gunicorn_body.py was written against gunicorn {gunicorn_body.WRITTEN_FOR}; "
        f"{gunicorn.__version__} is installed and requirements.txt pins {pinned}. It uses gunicorn's private "
        "Body, LengthReader and SocketUnreader: re-read gunicorn/http/body.py and unreader.py, run "
        "tests/test_wsgi_body.py, and move WRITTEN_FOR only when they still fit."
    )
    assert gunicorn_body.supported()


@pytest.fixture
def gunicorn_conf(monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_BIND", "127.0.0.1:8003")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # or loading it names one for the session
    spec = importlib.util.spec_from_file_location("gunicorn_conf_hooks", ROOT / "registry_site" / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def connection():
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_the_pre_request_hook_reads_the_body_from_the_socket(gunicorn_conf, connection):
    server, client = connection
    body = bytes(range(256)) * 40
    client.sendall(
        b"PUT /models/m/versions/v1/file HTTP/1.1\r\nHost: registry\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        + b"GET /health HTTP/1.1\r\nHost: registry\r\n\r\n"
    )
    cfg = Config()
    parser = RequestParser(cfg, server, ("127.0.0.1", 40000))
    request = next(parser)

    gunicorn_conf.pre_request(SimpleNamespace(log=Logger(cfg)), request)

    assert isinstance(request.body, gunicorn_body.GunicornLengthBody)
    buffer = bytearray(1000)
    received = bytearray()
    while n := request.body.readinto(buffer):
        received += buffer[:n]
    assert bytes(received) == body
    # The next request on the connection is where gunicorn's parser looks for it.
    following = next(parser)
    assert (following.method, following.path) == ("GET", "/health")


def test_gunicorn_drains_an_unread_body_through_the_reader(gunicorn_conf, connection):
    server, client = connection
    client.sendall(
        b"POST /models HTTP/1.1\r\nHost: registry\r\nContent-Length: 5000\r\n\r\n"
        + b"x" * 5000
        + b"GET /models HTTP/1.1\r\nHost: registry\r\n\r\n"
    )
    cfg = Config()
    parser = RequestParser(cfg, server, ("127.0.0.1", 40000))
    request = next(parser)
    gunicorn_conf.pre_request(SimpleNamespace(log=Logger(cfg)), request)
    assert request.body.read(10) == b"x" * 10  # the application reads a little and answers

    following = next(parser)  # gunicorn discards the rest of the body first

    assert (following.method, following.path) == ("GET", "/models")


def test_another_gunicorn_version_keeps_gunicorns_own_reader(monkeypatch, connection):
    server, client = connection
    client.sendall(b"PUT /x HTTP/1.1\r\nHost: registry\r\nContent-Length: 3\r\n\r\nabc")
    request = next(RequestParser(Config(), server, ("127.0.0.1", 40000)))
    original = request.body
    monkeypatch.setattr(gunicorn, "__version__", "99.0.0")

    gunicorn_body.install(request)

    assert request.body is original
    assert request.body.read() == b"abc"
