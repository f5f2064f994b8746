"""Races between requests, through a real gunicorn with several workers and threads. On PostgreSQL the
model's row lock serializes them; on SQLite the IMMEDIATE write transactions do. Either way the outcome
must be exactly one winner and a consistent history, never a 500."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, all_at_once, running_registry

THREADS = 8

# One server for the module's tests, so they run on one xdist worker.
pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("concurrency")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("race")
    with running_registry(workdir, workers=3, setup=SERVER_ENV.update) as base:
        yield base, workdir / "storage"


SERVER_ENV: dict[str, str] = {}


def _verify_artifacts() -> str:
    """manage.py verify_artifacts on the live server's database and storage, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_artifacts"], cwd=ROOT, env=SERVER_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _stored(storage: Path) -> list[Path]:
    return [p for p in (storage / "sha256").rglob("*") if p.is_file()] if (storage / "sha256").exists() else []


def _model(base: str, name: str) -> None:
    response = requests.post(f"{base}/models", json={"name": name, "model_type": "classification"})
    assert response.status_code == 201, response.text


def test_same_version_posted_concurrently_is_registered_once_with_one_file(live):
    base, storage = live
    _model(base, "race_create")
    before = len(_stored(storage))
    payload = b"identical weights " * 4096

    def post():
        return requests.post(
            f"{base}/models/race_create/versions",
            data={"version": "v1", "format": "onnx"},
            files={"file": ("m.onnx", payload)},
        )

    # The same file and metadata: one registers it, the others get it back as registered (200).
    statuses = sorted(r.status_code for r in all_at_once([post] * THREADS))
    assert statuses == [200] * (THREADS - 1) + [201]
    versions = requests.get(f"{base}/models/race_create/versions").json()["results"]
    assert [v["version"] for v in versions] == ["v1"]
    assert versions[0]["is_default"] is True
    assert len(_stored(storage)) == before + 1


def test_concurrent_set_default_leaves_exactly_one_default(live):
    base, _ = live
    _model(base, "race_default")
    for i in range(THREADS):
        response = requests.post(
            f"{base}/models/race_default/versions",
            data={"version": f"v{i}", "format": "onnx"},
            files={"file": (f"v{i}.onnx", f"weights {i}".encode())},
        )
        assert response.status_code == 201
    calls = [(lambda i=i: requests.post(f"{base}/models/race_default/versions/v{i}/default")) for i in range(THREADS)]
    responses = all_at_once(calls)
    assert [r.status_code for r in responses] == [200] * THREADS, [r.text for r in responses]
    defaults = requests.get(f"{base}/models/race_default/versions?is_default=true").json()["results"]
    assert len(defaults) == 1


def test_concurrent_deploys_and_rollbacks_keep_one_active_deployment(live):
    base, _ = live
    _model(base, "race_deploy")
    for i in range(THREADS):
        response = requests.post(
            f"{base}/models/race_deploy/versions",
            data={"version": f"v{i}", "format": "onnx"},
            files={"file": (f"v{i}.onnx", f"weights {i}".encode())},
        )
        assert response.status_code == 201

    def deploy(i):
        return requests.post(
            f"{base}/deploy",
            json={"model_name": "race_deploy", "version": f"v{i}", "deployment_target": "production"},
        )

    results = all_at_once([(lambda i=i: deploy(i)) for i in range(THREADS)])
    assert sorted(r.status_code for r in results) == [201] * THREADS

    def history():
        return requests.get(f"{base}/deployments?model=race_deploy&page_size=500").json()["results"]

    rows = history()
    assert [d["deployment_status"] for d in rows].count("active") == 1
    assert [d["deployment_status"] for d in rows].count("superseded") == THREADS - 1

    # Now race rollbacks of the active deployment against each other and against new deploys.
    active = next(d for d in rows if d["deployment_status"] == "active")
    rollback = lambda: requests.post(f"{base}/deployments/{active['id']}/rollback", json={"reason": "race"})  # noqa: E731
    results = all_at_once([rollback] * 4 + [(lambda: deploy(0))] * 2)
    rollback_statuses = sorted(r.status_code for r in results[:4])
    assert rollback_statuses.count(200) <= 1 and set(rollback_statuses) <= {200, 409}
    assert all(r.status_code in (200, 201) for r in results[4:])
    for response in results:
        assert response.status_code < 500, response.text

    rows = history()
    statuses = [d["deployment_status"] for d in rows]
    assert statuses.count("active") == 1
    active_version = next(d["version"] for d in rows if d["deployment_status"] == "active")
    targets = {
        v["version"]: v["deployed_to"]
        for v in requests.get(f"{base}/models/race_deploy/versions?page_size=500").json()["results"]
    }
    assert [v for v, t in targets.items() if t == ["production"]] == [active_version]
    rolled_back = [d for d in rows if d["deployment_status"] == "rolled_back"]
    assert all(d["rollback_at"] and d["rollback_reason"] == "race" for d in rolled_back)


def test_losers_of_a_file_upload_race_leave_no_file(live):
    """10 clients attach different files to one file-less version at once, 8 rounds: one wins each
    round, and the 9 files refused (409) are removed at once, not left for gc_artifacts."""
    base, storage = live
    _model(base, "race_attach")
    before = len(_stored(storage))
    for round_ in range(8):
        version = f"v{round_}"
        assert requests.post(f"{base}/models/race_attach/versions", json={"version": version, "format": "onnx"}).ok

        def put(i, version=version, round_=round_):
            return requests.put(
                f"{base}/models/race_attach/versions/{version}/file",
                data=f"weights of client {i} in round {round_} ".encode() * 2000,
                headers={"Content-Type": "application/octet-stream"},
            )

        statuses = sorted(r.status_code for r in all_at_once([(lambda i=i: put(i)) for i in range(10)]))
        assert statuses == [200] + [409] * 9
    assert "0 orphaned" in _verify_artifacts()
    assert len(_stored(storage)) == before + 8


@pytest.mark.parametrize("same_bytes", [True, False])
def test_losers_of_a_registration_race_leave_no_file(live, same_bytes):
    base, storage = live
    name = f"race_register_{'same' if same_bytes else 'different'}"
    _model(base, name)

    def post(i):
        payload = b"racing weights " * 4096 + (b"" if same_bytes else str(i).encode())
        return requests.post(
            f"{base}/models/{name}/versions", data={"version": "v1", "format": "onnx"}, files={"file": ("m", payload)}
        )

    statuses = sorted(r.status_code for r in all_at_once([(lambda i=i: post(i)) for i in range(20)]))
    # The same bytes are the same registration (200, idempotent); other bytes are refused (409).
    assert statuses == ([200] * 19 + [201] if same_bytes else [201] + [409] * 19)
    assert "0 orphaned" in _verify_artifacts()


def test_files_attached_at_once_to_file_less_versions_make_one_default(live):
    """The first version to get a file becomes the default, once: the model's row lock orders them."""
    base, _ = live
    _model(base, "race_first_file")
    for i in range(THREADS):
        assert requests.post(f"{base}/models/race_first_file/versions", json={"version": f"v{i}", "format": "onnx"}).ok
    calls = [
        (
            lambda i=i: requests.put(
                f"{base}/models/race_first_file/versions/v{i}/file",
                data=f"weights {i}".encode(),
                headers={"Content-Type": "application/octet-stream"},
            )
        )
        for i in range(THREADS)
    ]
    responses = all_at_once(calls)
    assert [r.status_code for r in responses] == [200] * THREADS, [r.text for r in responses]
    assert sum(v["is_default"] for v in _versions(base, "race_first_file")) == 1
    default = requests.get(f"{base}/models/race_first_file/versions/default/file")
    assert default.status_code == 200


def _versions(base: str, model: str) -> list[dict]:
    return requests.get(f"{base}/models/{model}/versions?page_size=500").json()["results"]
