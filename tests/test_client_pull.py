"""`mvr pull` against a live registry: the default, a version or what is active on a target; verified
against the recorded sha256; a download broken off resumes with Range and fetches only what is missing."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from tests.client_support import Proxy, mvr_json, production_registry, run_mvr
from tests.live import running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_pull")]

SIZE = 12 * 1024 * 1024 + 345
HEADROOM = 64 * 1024  # HTTP heads and the version's JSON, around the file's bytes


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("client-pull")
    files = tmp_path_factory.mktemp("client-pull-files")
    with running_registry(workdir) as base:
        payloads = {}
        for version in ("v1", "v2"):
            payloads[version] = os.urandom(SIZE)
            (files / f"{version}.onnx").write_bytes(payloads[version])
            pushed = mvr_json(
                "push", "detector", version, str(files / f"{version}.onnx"),
                "--create-model", "--model-type", "object_detection", url=base,
            )  # fmt: skip
            assert pushed["outcome"] == "created"
        yield base, workdir, payloads


def test_pull_the_default_a_version_or_what_is_active_on_a_target(live, tmp_path):
    base, _, payloads = live
    into_folder = mvr_json("pull", "detector", "-o", str(tmp_path), url=base)
    assert into_folder["path"] == str(tmp_path / "v1.onnx")  # the registered file name, in that folder
    assert (tmp_path / "v1.onnx").read_bytes() == payloads["v1"]
    assert (
        into_folder["sha256"] == hashlib.sha256(payloads["v1"]).hexdigest() and into_folder["outcome"] == "downloaded"
    )

    assert mvr_json("pull", "detector:v2", "-o", str(tmp_path / "two.onnx"), url=base)["size"] == SIZE
    assert (tmp_path / "two.onnx").read_bytes() == payloads["v2"]

    requests.post(f"{base}/targets", json={"name": "edge"}).raise_for_status()
    requests.post(
        f"{base}/deploy", json={"model_name": "detector", "version": "v2", "deployment_target": "edge"}
    ).raise_for_status()
    active = mvr_json("pull", "detector@edge", "-o", str(tmp_path / "edge.onnx"), url=base)
    assert (tmp_path / "edge.onnx").read_bytes() == payloads["v2"] and active["outcome"] == "downloaded"

    # Pulled again: the file is there and whole, nothing is fetched.
    again = mvr_json("pull", "detector@edge", "-o", str(tmp_path / "edge.onnx"), url=base)
    assert again["outcome"] == "present" and again["fetched"] == 0
    assert not list(tmp_path.glob(".*.part"))


def test_nothing_to_pull_is_an_error(live, tmp_path):
    base, _, _ = live
    nothing = run_mvr("pull", "detector@nowhere", "-o", str(tmp_path), url=base)
    assert nothing.returncode == 1 and "No version of model 'detector' is active on target 'nowhere'" in nothing.stderr
    assert run_mvr("pull", "detector:v9", "-o", str(tmp_path), url=base).returncode == 1
    assert run_mvr("pull", "detector:", url=base).returncode == 2


def test_a_download_broken_off_resumes_in_the_same_run(live, tmp_path):
    base, _, payloads = live
    cut = 5 * 1024 * 1024
    with Proxy(base, cut_down_after=cut) as proxy:
        pulled = mvr_json("pull", "detector:v1", "-o", str(tmp_path / "m.onnx"), url=proxy.url)
        (resume,) = proxy.ranges()
        downstream = proxy.downstream
    assert (tmp_path / "m.onnx").read_bytes() == payloads["v1"]
    start = int(resume.removeprefix("bytes=").rstrip("-"))
    # The second request asked only for what was missing, from close to where the cut fell...
    assert cut - 2 * 1024 * 1024 < start <= cut
    # ...and nothing was fetched twice beyond what the cut tore off mid-chunk.
    assert SIZE <= downstream <= SIZE + (cut - start) + HEADROOM
    assert pulled["fetched"] == SIZE and pulled["resumed_from"] == 0


def test_a_download_broken_off_resumes_in_the_next_run_fetching_only_the_rest(live, tmp_path):
    base, _, payloads = live
    destination = tmp_path / "model.onnx"
    with Proxy(base, cut_down_after=7 * 1024 * 1024) as proxy:
        broken = run_mvr("--retries", "0", "pull", "detector:v2", "-o", str(destination), url=proxy.url)
    assert broken.returncode == 1 and "run the same command again to resume" in broken.stderr
    assert not destination.exists()
    (partial,) = tmp_path.glob(".model.onnx.*.part")
    kept = partial.stat().st_size
    assert 0 < kept < SIZE and partial.read_bytes() == payloads["v2"][:kept]

    with Proxy(base) as proxy:
        resumed = mvr_json("pull", "detector:v2", "-o", str(destination), url=proxy.url)
        assert proxy.ranges() == [f"bytes={kept}-"]
        assert SIZE - kept <= proxy.downstream <= SIZE - kept + HEADROOM
    assert resumed["outcome"] == "resumed" and resumed["resumed_from"] == kept and resumed["fetched"] == SIZE - kept
    assert destination.read_bytes() == payloads["v2"]
    assert not partial.exists()


def test_a_file_damaged_in_the_registry_is_refused_and_not_kept(tmp_path):
    """The stored bytes rot on the server: the download's sha256 does not match the recorded one."""
    (tmp_path / "good.onnx").write_bytes(b"good weights " * 1000)
    with running_registry(tmp_path / "server", workers=1) as base:
        pushed = mvr_json(
            "push", "rot", "v1", str(tmp_path / "good.onnx"), "--create-model", "--model-type", "audio", url=base
        )
        digest = pushed["sha256"]
        (stored,) = (tmp_path / "server" / "storage").rglob(digest)
        stored.write_bytes(b"evil weights " * 1000)  # the same size
        result = run_mvr("pull", "rot:v1", "-o", str(tmp_path / "out.onnx"), url=base)
    assert result.returncode == 1
    assert f"not the registry's recorded {digest}" in result.stderr and "verify_artifacts" in result.stderr
    assert not (tmp_path / "out.onnx").exists() and not list(tmp_path.glob(".out.onnx.*"))


def test_a_download_handed_to_s3_gets_no_token_and_resumes_there(tmp_path, s3_endpoint, s3_bucket):
    """With REGISTRY_S3_REDIRECT_DOWNLOADS the registry answers with a presigned S3 URL: the client follows
    it without the registry's token, and resumes a broken download from S3 with a plain Range."""
    bucket, _ = s3_bucket
    payload = os.urandom(SIZE)
    (tmp_path / "s3.onnx").write_bytes(payload)
    with Proxy(s3_endpoint, cut_down_after=5 * 1024 * 1024) as s3:
        storage = {
            "REGISTRY_S3_BUCKET": bucket,
            "REGISTRY_S3_ENDPOINT_URL": s3.url,
            "REGISTRY_S3_REGION": "us-east-1",
            "REGISTRY_S3_REDIRECT_DOWNLOADS": "true",
        }
        with production_registry(tmp_path / "server", {"ci": "editor"}, workers=1, extra_env=storage) as (base, tokens):
            push = ("push", "s3model", "v1", str(tmp_path / "s3.onnx"), "--create-model", "--model-type", "audio")
            assert mvr_json(*push, url=base, token=tokens["editor"])["outcome"] == "created"
            s3.reset_counts()
            pulled = mvr_json("pull", "s3model:v1", "-o", str(tmp_path / "out.onnx"), url=base, token=tokens["editor"])
        (resume,) = s3.ranges()
        heads = list(s3.heads)
    assert (tmp_path / "out.onnx").read_bytes() == payload and pulled["fetched"] == SIZE
    assert len(heads) == 2 and all(head.startswith("GET /") and "Signature=" in head for head in heads)
    assert not any("bearer" in head.lower() for head in heads)
    assert "if-range" not in heads[1].lower() and resume.startswith("bytes=")
