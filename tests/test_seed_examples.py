"""The seed's curl, Python and JavaScript examples, read from the seed document itself and run verbatim
against a real registry (gunicorn, as `make run` serves it). The only change is the origin: the test
server listens on a free port instead of 8003, so a registry you are running does not get in the way."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, running_registry

SEED_CANDIDATES = [
    ROOT / "docs" / "seed" / "model-version-registry.md",
    ROOT.parent / "shared" / "seed" / "model-version-registry.md",
]
SEED = next((p for p in SEED_CANDIDATES if p.exists()), SEED_CANDIDATES[0])
SEED_ORIGIN = "http://localhost:8003"
# One server for the module's tests, so they run on one xdist worker; curl, python and node run the
# examples.
pytestmark = [pytest.mark.gunicorn, pytest.mark.subprocess, pytest.mark.xdist_group("seed_examples")]


def seed_sections() -> dict[str, list[tuple[str, str]]]:
    """{"### heading": [(language, code), ...]} for every fenced block in the seed."""
    sections: dict[str, list[tuple[str, str]]] = {}
    heading = ""
    for match in re.finditer(r"^(#{2,3} [^\n]+)$|^```(\w+)\n(.*?)^```", SEED.read_text(), re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            sections.setdefault(heading, []).append((match.group(2), match.group(3)))
    return sections


def curl_block(section: str) -> str:
    """The section's bash block: one curl command, possibly spread over several lines."""
    blocks = [code for language, code in seed_sections()[section] if language == "bash"]
    assert len(blocks) == 1, f"expected one bash block under '{section}'"
    return blocks[0]


# Prepended to the seed's command: print the HTTP status after the body, and no progress meter.
CURL_STATUS = "curl() { command curl -s -w '\\n%{http_code}' \"$@\"; }\n"


def run_curl(section: str, base: str, cwd: Path, *, only_curl_lines: bool = False) -> dict:
    code = curl_block(section)
    if only_curl_lines:  # e.g. "Check Status" also runs docker-compose, which this machine has not
        code = "\n".join(line for line in code.splitlines() if line.startswith("curl "))
    assert SEED_ORIGIN in code
    result = subprocess.run(
        ["bash", "-c", CURL_STATUS + code.replace(SEED_ORIGIN, base)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    return {"status": int(status), "json": json.loads(body) if body.strip() else None}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("seed-registry")) as base:
        yield base


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed-client")
    (path / "model.zip").write_bytes(b"PK\x03\x04 seed model archive " * 1000)
    (path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch seed onnx " * 1000)
    return path


def test_the_seed_document_is_found():
    assert SEED.exists(), f"seed not found at any of {SEED_CANDIDATES}"


def test_curl_examples_verbatim(registry, workdir):
    health = run_curl("Health Check", registry, workdir)
    assert health["status"] == 200 and health["json"]["status"] == "healthy"
    check_status = run_curl("Check Status", registry, workdir, only_curl_lines=True)
    assert check_status["status"] == 200

    created = run_curl("Create Model", registry, workdir)
    assert created["status"] == 201, created
    assert created["json"]["name"] == "image_classifier"
    assert created["json"]["model_type"] == "classification"

    listed = run_curl("List Models", registry, workdir)
    assert [m["name"] for m in listed["json"]["results"]] == ["image_classifier"]
    detail = run_curl("Get Model Details", registry, workdir)
    assert detail["status"] == 200 and detail["json"]["description"] == "ResNet-50 image classifier"

    # The seed reads and deploys v1 but only shows how to create v2: register v1 the same way first.
    v1 = requests.post(
        f"{registry}/models/image_classifier/versions",
        data={"version": "v1", "format": "onnx", "accuracy": "0.91"},
        files={"file": ("v1.onnx", b"version one weights")},
    )
    assert v1.status_code == 201, v1.text

    version = run_curl("Create Model Version", registry, workdir)
    assert version["status"] == 201, version
    body = version["json"]
    assert body["version"] == "v2"
    assert body["format"] == "tensorflow_saved_model"
    assert body["accuracy"] == 0.95
    assert body["input_shape"] == [1, 3, 224, 224] and body["output_shape"] == [1, 1000]
    model_zip = (workdir / "model.zip").read_bytes()
    assert body["file_size"] == len(model_zip)
    assert body["checksum"] == hashlib.sha256(model_zip).hexdigest()
    # Re-sent verbatim (a retried CI job): the version as registered, 200 instead of a 409, nothing new.
    resent = run_curl("Create Model Version", registry, workdir)
    assert resent["status"] == 200, resent
    assert resent["json"] == body

    versions = run_curl("List Model Versions", registry, workdir)
    assert sorted(v["version"] for v in versions["json"]["results"]) == ["v1", "v2"]
    again = run_curl("Version Already Exists", registry, workdir)
    assert again["json"] == versions["json"]
    got = run_curl("Get Model Version", registry, workdir)
    assert got["status"] == 200 and got["json"]["version"] == "v1"

    deployed = run_curl("Deploy Model Version", registry, workdir)
    assert deployed["status"] == 201, deployed
    assert deployed["json"]["deployment_status"] == "active"
    assert deployed["json"]["deployed_by"] == "admin"
    assert deployed["json"]["deployment_target"] == "production"

    default = run_curl("Get Default Version", registry, workdir)
    assert default["status"] == 200
    assert default["json"]["version"] == "v1"  # the first version registered
    assert default["json"]["deployed_to"] == ["production"]

    downloaded = requests.get(f"{registry}/models/image_classifier/versions/v2/file")
    assert downloaded.content == model_zip


def _code(language: str) -> str:
    title = {"python": "Python Client", "javascript": "JavaScript Client"}[language]
    blocks = [code for lang, code in seed_sections()[title] if lang == language]
    assert len(blocks) == 1
    return blocks[0]


def _check_mobilenet(registry: str, payload: bytes) -> None:
    model = requests.get(f"{registry}/models/mobilenet_v3").json()
    assert model["model_type"] == "classification"
    version = requests.get(f"{registry}/models/mobilenet_v3/versions/v1").json()
    assert version["format"] == "onnx"
    assert version["accuracy"] == 0.85
    assert version["input_shape"] == [1, 3, 224, 224]
    assert version["checksum"] == hashlib.sha256(payload).hexdigest()
    assert version["is_default"] is True


def test_python_client_example_verbatim(registry, workdir):
    script = _code("python").replace(SEED_ORIGIN, registry)
    script += "\nassert response.status_code == 201, response.text\nprint(response.text)\n"
    result = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    _check_mobilenet(registry, (workdir / "model.onnx").read_bytes())
    # The JavaScript example creates the same model: start it from a clean slate.
    assert requests.delete(f"{registry}/models/mobilenet_v3").status_code == 204


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_javascript_client_example_verbatim(registry, workdir):
    payload = (workdir / "model.onnx").read_bytes()
    requests.delete(f"{registry}/models/mobilenet_v3")
    program = (
        "import { readFileSync } from 'node:fs';\n"
        "const modelFile = new Blob([readFileSync('model.onnx')]);\n"
        + _code("javascript").replace(SEED_ORIGIN, registry)
        + "\nconsole.log(JSON.stringify({status: versionResponse.status, body: await versionResponse.json()}));\n"
    )
    (workdir / "client.mjs").write_text(program)
    result = subprocess.run(["node", "client.mjs"], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["status"] == 201, output
    _check_mobilenet(registry, payload)


def test_browser_clients_may_call_a_local_registry(registry):
    """The JavaScript example runs in a web page on another origin: the preflight must allow it."""
    preflight = requests.options(
        f"{registry}/models",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
