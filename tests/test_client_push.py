"""`mvr push` against a live registry: register as JSON, stream the file with the raw PUT and its declared
sha256, re-run safely, refuse what the registry cannot record, retry what a network or proxy breaks."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import struct
import subprocess
import termios
import threading

import pytest
import requests

from tests.client_support import MVR, Proxy, http_answer, mvr_json, run_mvr
from tests.live import free_port, running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_push")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("client-push")
    with running_registry(workdir) as base:
        yield base, workdir


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch" + os.urandom(3 * 1024 * 1024 + 17))
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_puts(workdir, model: str) -> list[str]:
    return [line for line in (workdir / "gunicorn.log").read_text().splitlines() if f"PUT /models/{model}/" in line]


def test_push_registers_the_version_then_streams_its_file_declaring_the_digest(live, model_file, tmp_path):
    base, workdir = live
    (tmp_path / "NOTES.md").write_text("# v1\nFirst cut.\n")
    pushed = mvr_json(
        "push", "resnet", "v1", str(model_file),
        "--create-model", "--model-type", "classification", "--description", "ResNet",
        "--metric", "accuracy=0.91", "--f1-score", "0.8", "--metric", "mAP=0.5",
        "--input-shape", "null,3,224,224", "--output-shape", "[1,1000]", "--status", "testing",
        "--notes-file", str(tmp_path / "NOTES.md"), "--training-config", '{"epochs": 3}',
        url=base,
    )  # fmt: skip
    digest = sha256(model_file)
    assert pushed["outcome"] == "created" and pushed["sha256"] == digest
    assert pushed["uploaded"] == model_file.stat().st_size
    version = requests.get(f"{base}/models/resnet/versions/v1").json()
    assert version["checksum"] == digest and version["file_size"] == model_file.stat().st_size
    assert version["format"] == "onnx"  # from the file's name
    assert (version["accuracy"], version["f1_score"], version["mAP"]) == (0.91, 0.8, 0.5)
    assert version["input_shape"] == [None, 3, 224, 224] and version["output_shape"] == [1, 1000]
    assert version["status"] == "testing" and version["release_notes"] == "# v1\nFirst cut."
    assert version["training_config"] == {"epochs": 3} and version["file_name"] == "model.onnx"
    assert requests.get(f"{base}/models/resnet").json()["description"] == "ResNet"
    assert requests.get(f"{base}/models/resnet/versions/v1/file").content == model_file.read_bytes()
    # The bytes went through the raw fast path, with the digest declared for the server to check.
    (put,) = file_puts(workdir, "resnet")
    assert f"PUT /models/resnet/versions/v1/file?sha256={digest}&filename=model.onnx" in put


def test_running_the_same_push_again_is_success_and_sends_nothing(live, model_file, tmp_path):
    base, workdir = live
    (tmp_path / "NOTES.md").write_text("Notes end with a newline the registry trims.\n")
    args = ("push", "again", "v1", str(model_file), "--create-model", "--model-type", "audio", "--accuracy", "0.7")
    args += ("--notes-file", str(tmp_path / "NOTES.md"), "--input-shape", "1,3", "--status", "testing")
    assert mvr_json(*args, url=base)["outcome"] == "created"
    second = mvr_json(*args, url=base)
    assert second["outcome"] == "unchanged" and second["uploaded"] == 0
    # Approved since: a re-run of the job that pushed it still succeeds, and leaves the status alone.
    requests.patch(f"{base}/models/again/versions/v1", json={"status": "approved"}).raise_for_status()
    third = mvr_json(*args, url=base)
    assert third["outcome"] == "unchanged" and third["version"]["status"] == "approved"
    assert len(file_puts(workdir, "again")) == 1


def test_a_different_file_or_metadata_under_the_same_version_is_refused(live, model_file, tmp_path):
    base, _ = live
    mvr_json("push", "differs", "v1", str(model_file), "--create-model", "--model-type", "audio", url=base)
    other = tmp_path / "other.onnx"
    other.write_bytes(b"other weights")
    refused = run_mvr("push", "differs", "v1", str(other), url=base)
    assert refused.returncode == 1
    assert "checksum" in refused.stderr and sha256(other) in refused.stderr and "push a new version" in refused.stderr
    refused = run_mvr("push", "differs", "v1", str(model_file), "--accuracy", "0.99", url=base)
    assert refused.returncode == 1 and "accuracy: registry has None, this push 0.99" in refused.stderr
    assert requests.get(f"{base}/models/differs/versions/v1").json()["checksum"] == sha256(model_file)


def test_a_version_registered_without_its_file_gets_it(live, model_file):
    """A run cut off between registering and uploading left the version without a file: the next run
    attaches it."""
    base, _ = live
    requests.post(f"{base}/models", json={"name": "halfway", "model_type": "audio"}).raise_for_status()
    requests.post(f"{base}/models/halfway/versions", json={"version": "v1", "format": "onnx"}).raise_for_status()
    pushed = mvr_json("push", "halfway", "v1", str(model_file), url=base)
    assert pushed["outcome"] == "attached"
    assert requests.get(f"{base}/models/halfway/versions/v1").json()["checksum"] == sha256(model_file)


def test_default_makes_the_pushed_version_the_default_after_its_file_is_stored(live, model_file):
    base, _ = live
    mvr_json("push", "dflt", "v1", str(model_file), "--create-model", "--model-type", "audio", url=base)
    mvr_json("push", "dflt", "v2", str(model_file), url=base)
    assert requests.get(f"{base}/models/dflt/versions/default").json()["version"] == "v1"
    assert mvr_json("push", "dflt", "v2", str(model_file), "--default", url=base)["version"]["is_default"] is True
    assert requests.get(f"{base}/models/dflt/versions/default").json()["version"] == "v2"


def test_custom_metrics_and_tags_are_recorded_and_a_rerun_is_unchanged(live, model_file):
    """The registry records open metadata (issue #9), and the client finds that in its schema: `--metric`
    beyond the seed's five and `--tag` reach the version, and the same push again changes nothing."""
    base, _ = live
    args = ("push", "custom", "v1", str(model_file), "--create-model", "--model-type", "audio")
    args += ("--metric", "auc=0.9", "--metric", "accuracy=0.8", "--tag", "commit=abc123")
    assert mvr_json(*args, url=base)["outcome"] == "created"
    version = requests.get(f"{base}/models/custom/versions/v1").json()
    assert version["metrics"] == {"auc": 0.9} and version["accuracy"] == 0.8
    assert version["tags"] == {"commit": "abc123"}
    assert mvr_json(*args, url=base)["outcome"] == "unchanged"
    changed = run_mvr(*args[:-1], "commit=def456", url=base)
    assert changed.returncode == 1 and "tags" in changed.stderr


def test_a_missing_model_is_named(live, model_file):
    base, _ = live
    refused = run_mvr("push", "nosuchmodel", "v1", str(model_file), url=base)
    assert refused.returncode == 1 and "nosuchmodel" in refused.stderr and "--create-model" in refused.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric", "auc"], "--metric takes NAME=VALUE"),
        (["--metric", "auc=high"], "not a number"),
        (["--accuracy", "nan"], "not a finite number"),
        (["--input-shape", "1,x"], "is not a shape"),
        (["--training-config", "[1]"], "must be a JSON object"),
        (["--notes-file", "/nonexistent/NOTES.md"], "cannot read"),
    ],
)
def test_bad_command_lines_exit_2_before_sending_anything(live, model_file, args, message):
    base, _ = live
    result = run_mvr("push", "usage", "v1", str(model_file), *args, url=base)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_a_file_of_unknown_format_or_a_folder_is_a_usage_error(live, tmp_path):
    base, _ = live
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert "give --format" in run_mvr("push", "m", "v1", str(tmp_path / "weights.bin"), url=base).stderr
    folder = run_mvr("push", "m", "v1", str(tmp_path), "--format", "tensorflow_saved_model", url=base)
    assert folder.returncode == 2 and "Archive a directory first" in folder.stderr


def _stderr_on_a_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal of 120 columns; return the exit code and what it showed."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=secondary, env=env, timeout=60)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    return done.returncode, shown.decode(errors="replace")


def test_progress_bar_with_rate_and_eta_on_a_terminal_only(live, model_file):
    base, _ = live
    args = [str(MVR), "push", "bars", "v1", str(model_file), "--create-model", "--model-type", "audio"]
    code, shown = _stderr_on_a_terminal(args, {**os.environ, "REGISTRY_URL": base})
    assert code == 0
    assert "hashing model.onnx" in shown and "uploading model.onnx" in shown
    assert "B/s" in shown and "<" in shown  # the rate and the time left
    # The same command in CI (stderr not a terminal) prints no bar, only its result.
    quiet = run_mvr("push", "bars", "v2", str(model_file), url=base)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("pushed bars:v2")
    # --quiet silences a terminal too.
    code, shown = _stderr_on_a_terminal([*args[:3], "v3", *args[4:], "--quiet"], {**os.environ, "REGISTRY_URL": base})
    assert code == 0 and shown == ""


def test_a_busy_registry_is_retried_after_the_time_it_asks(live, model_file):
    base, _ = live
    busy = [
        http_answer("503 Service Unavailable", {"detail": "busy"}, Retry_After="1"),
        http_answer("429 Too Many Requests", {"detail": "slow down"}, Retry_After="1"),
    ]
    with Proxy(base, canned=busy) as proxy:
        result = run_mvr(
            "push", "busy", "v1", str(model_file), "--create-model", "--model-type", "audio", url=proxy.url
        )
    assert result.returncode == 0, result.stderr
    assert "HTTP 503; retrying in 1.0 s (attempt 2 of 6)" in result.stderr
    assert "HTTP 429; retrying in 1.0 s (attempt 3 of 6)" in result.stderr
    assert requests.get(f"{base}/models/busy/versions/v1").json()["checksum"] == sha256(model_file)


def test_an_upload_broken_off_is_sent_again_and_stored_once(live, model_file):
    base, workdir = live
    requests.post(f"{base}/models", json={"name": "cutoff", "model_type": "audio"}).raise_for_status()
    with Proxy(base, cut_up_after=1024 * 1024) as proxy:
        result = run_mvr("push", "cutoff", "v1", str(model_file), url=proxy.url)
    assert result.returncode == 0, result.stderr
    assert "retrying" in result.stderr
    assert requests.get(f"{base}/models/cutoff/versions/v1").json()["checksum"] == sha256(model_file)
    assert requests.get(f"{base}/models/cutoff/versions/v1/file").content == model_file.read_bytes()


def test_an_unreachable_registry_fails_after_the_retries(model_file):
    result = run_mvr("--retries", "1", "push", "m", "v1", str(model_file), url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "retrying" in result.stderr and "failed" in result.stderr


def test_json_errors_for_scripts(live, model_file):
    base, _ = live
    result = run_mvr("--json", "push", "nosuch", "v1", str(model_file), url=base)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["status"] == 404 and error["exit_code"] == 1 and "nosuch" in error["error"]
