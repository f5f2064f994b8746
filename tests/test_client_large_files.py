"""A multi-GB push and pull through `mvr` against a live registry, with the client's memory measured: it
must stay flat (every byte passes through one 1 MiB buffer), whatever the file's size."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import requests

from tests.live import running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_large_files")]

GIB = 1024**3
SIZE = 2 * GIB + 1024**2 + 7  # over 2 GiB, and not a round number
MAX_RSS_GROWTH = 100 * 1024**2

# Runs `mvr` in-process and reports its resident memory after start-up and at its peak.
DRIVER = """
import json, sys
from mvr.cli import main

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

before = status("VmRSS:")
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "rss_before": before, "rss_peak": status("VmHWM:")}, out)
"""


def mvr_measured(tmp_path, base: str, *args: str) -> tuple[dict, dict]:
    report = tmp_path / "memory.json"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "REGISTRY_URL": base},
        timeout=300,
    )
    memory = json.loads(report.read_text())
    assert memory["code"] == 0, done.stderr
    return json.loads(done.stdout), memory


def sparse_sha256(size: int) -> str:
    """The sha256 of `size` zero bytes, computed without a file."""
    digest, block = hashlib.sha256(), bytes(1024**2)
    for _ in range(size // len(block)):
        digest.update(block)
    digest.update(bytes(size % len(block)))
    return digest.hexdigest()


@pytest.mark.slow
def test_a_multi_gigabyte_push_and_pull_keep_the_client_memory_flat(tmp_path):
    big = tmp_path / "big.onnx"
    with open(big, "wb") as handle:  # sparse: the client still reads every byte, the disk stores none
        handle.truncate(SIZE)
    with running_registry(tmp_path / "server", workers=1) as base:
        requests.post(f"{base}/models", json={"name": "llm", "model_type": "classification"}).raise_for_status()
        pushed, push_memory = mvr_measured(tmp_path, base, "push", "llm", "v1", str(big))
        assert pushed["outcome"] == "created" and pushed["size"] == SIZE
        assert pushed["sha256"] == sparse_sha256(SIZE)
        version = requests.get(f"{base}/models/llm/versions/v1").json()
        assert version["checksum"] == pushed["sha256"] and version["file_size"] == SIZE
        big.unlink()

        pulled, pull_memory = mvr_measured(tmp_path, base, "pull", "llm:v1", "-o", str(tmp_path / "copy.onnx"))
        assert pulled["outcome"] == "downloaded" and pulled["size"] == SIZE
        assert (tmp_path / "copy.onnx").stat().st_size == SIZE

    push_growth = push_memory["rss_peak"] - push_memory["rss_before"]
    pull_growth = pull_memory["rss_peak"] - pull_memory["rss_before"]
    print(
        f"\npush: {SIZE / pushed['seconds'] / 1e6:.0f} MB/s over {pushed['seconds']:.1f} s "
        f"(hashing included), client RSS {push_memory['rss_before'] / 2**20:.1f} MiB -> peak "
        f"{push_memory['rss_peak'] / 2**20:.1f} MiB (+{push_growth / 2**20:.1f}); "
        f"pull: client RSS +{pull_growth / 2**20:.1f} MiB"
    )
    assert push_growth < MAX_RSS_GROWTH, push_memory
    assert pull_growth < MAX_RSS_GROWTH, pull_memory
