"""The client is ready for the registry's coming features (issue 10, sections 2 to 4): open metrics and
tags, Idempotency-Key, and promotion policies with dry runs. These tests talk to a stand-in that answers
as the issue describes them; the same client code meets the registry in the other test_client_* files
(promotion policies, dry runs and their exit code 3: test_client_commands.py, against a live registry)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.client_support import run_mvr

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("client_future_api")]

SCHEMA = {
    "paths": {
        "/models/{name}/versions": {
            "post": {
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VersionCreate"}}}
                }
            }
        },
        "/deploy": {
            "post": {
                "parameters": [{"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Deploy"}}}},
            }
        },
    },
    "components": {
        "schemas": {
            "VersionCreate": {"properties": {"version": {}, "format": {}, "accuracy": {}, "metrics": {}, "tags": {}}},
            "Deploy": {"properties": {"model_name": {}, "version": {}, "deployment_target": {}, "dry_run": {}}},
        }
    },
}


class FutureRegistry(BaseHTTPRequestHandler):
    """Answers as the registry will once it has open metadata and promotion policies."""

    received: list[tuple[str, str, dict, dict]] = []
    version: dict | None = None

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.received.append((self.command, self.path, dict(self.headers), {}))
        try:
            body = json.loads(raw) if raw and "json" in self.headers.get("Content-Type", "") else {}
        except ValueError:
            body = {}
        self.received[-1] = (self.command, self.path, dict(self.headers), body)
        return body

    def do_GET(self) -> None:
        self._body()
        if self.path == "/openapi.json":
            return self._answer(200, SCHEMA)
        if self.path == "/models/m":
            return self._answer(200, {"name": "m"})
        if self.path == "/models/m/versions/v1":
            return self._answer(200, self.version) if self.version else self._answer(404, {"detail": "Not found."})
        if self.path.startswith("/deployments"):
            return self._answer(200, {"next": None, "previous": None, "results": []})
        self._answer(404, {"detail": "Not found."})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/models/m/versions":
            type(self).version = {**body, "model": "m", "checksum": None, "is_default": False}
            return self._answer(201, self.version)
        self._answer(404, {"detail": "Not found."})

    def do_PUT(self) -> None:
        self._body()
        type(self).version = {**self.version, "checksum": self.path.split("sha256=")[1].split("&")[0]}
        self._answer(200, self.version)


@pytest.fixture
def future():
    FutureRegistry.received = []
    FutureRegistry.version = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), FutureRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_custom_metrics_and_tags_go_to_the_open_metadata_once_the_schema_offers_it(future, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"weights")
    pushed = run_mvr(
        "push", "m", "v1", str(tmp_path / "m.onnx"),
        "--metric", "auc=0.91", "--metric", "accuracy=0.88", "--tag", "commit=abc123", "--tag", "branch=main",
        url=future,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    (registration,) = [body for method, path, _, body in FutureRegistry.received if method == "POST"]
    assert registration["metrics"] == {"auc": 0.91}
    assert registration["accuracy"] == 0.88  # a seed metric stays a field
    assert registration["tags"] == {"commit": "abc123", "branch": "main"}
    # Every POST carries an Idempotency-Key, so the registry can answer a retry with its first answer.
    assert all("Idempotency-Key" in headers for method, _, headers, _ in FutureRegistry.received if method == "POST")
