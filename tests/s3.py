"""A real S3 HTTP endpoint for the tests: moto's standalone server, started on a free loopback port by
the suite itself (so `make test` needs nothing installed by hand)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests

from tests.live import free_port, stop

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:  # not listening yet, or too busy starting to answer in time
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:  # also when it did not start in time: no server is left behind
        stop(server)
        log.close()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"registry-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return bucket, client


def s3_storage_settings(endpoint: str, bucket: str, prefix: str = "models") -> dict:
    return {
        "BACKEND": "registry_site.storage.S3ArtifactStorage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "location": prefix,
            "file_overwrite": True,
        },
    }
