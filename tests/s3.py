"""A real S3 HTTP endpoint for the tests: moto's standalone server, started on a free loopback port by
the suite itself (so `make test` needs nothing installed by hand), or the operator's own store when
REGISTRY_TEST_S3_ENDPOINT is set (with REGISTRY_TEST_S3_ACCESS_KEY, REGISTRY_TEST_S3_SECRET_KEY and
optionally REGISTRY_TEST_S3_REGION, REGISTRY_TEST_S3_ADDRESSING_STYLE, REGISTRY_TEST_S3_CHECKSUMS): the
same tests then prove that MinIO, Ceph RGW, R2 or AWS itself. Each test gets a bucket of its own, emptied
and removed afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests
from botocore.config import Config

from tests.live import free_port, stop

OWN_ENDPOINT = os.environ.get("REGISTRY_TEST_S3_ENDPOINT", "")
REGION = os.environ.get("REGISTRY_TEST_S3_REGION", "us-east-1")
ADDRESSING_STYLE = os.environ.get("REGISTRY_TEST_S3_ADDRESSING_STYLE", "path")
CHECKSUMS = os.environ.get("REGISTRY_TEST_S3_CHECKSUMS", "when_required")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": os.environ.get("REGISTRY_TEST_S3_ACCESS_KEY", "testing") if OWN_ENDPOINT else "testing",
    "AWS_SECRET_ACCESS_KEY": os.environ.get("REGISTRY_TEST_S3_SECRET_KEY", "testing") if OWN_ENDPOINT else "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    if OWN_ENDPOINT:
        yield OWN_ENDPOINT
        return
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


def s3_client(endpoint: str):
    """A boto3 client as the tests' own hands on the bucket (not the registry's), configured like the
    registry's so it reads what the store answers the same way."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": ADDRESSING_STYLE},
            request_checksum_calculation=CHECKSUMS,
            response_checksum_validation=CHECKSUMS,
        ),
    )


def create_bucket(client) -> str:
    bucket = f"registry-test-{uuid.uuid4().hex[:12]}"
    extra = {} if REGION == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": REGION}}
    client.create_bucket(Bucket=bucket, **extra)
    return bucket


def remove_bucket(client, bucket: str) -> None:
    """Empty and remove a bucket, abandoned multipart uploads included (a real store bills for them)."""
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = s3_client(s3_endpoint)
    bucket = create_bucket(client)
    yield bucket, client
    remove_bucket(client, bucket)


def s3_storage_settings(endpoint: str, bucket: str, prefix: str = "models", **options) -> dict:
    return {
        "BACKEND": "registry_site.storage.S3ArtifactStorage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "region_name": REGION,
            "location": prefix,
            "file_overwrite": True,
            "addressing_style": ADDRESSING_STYLE,
            "checksums": CHECKSUMS,
            "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            **options,
        },
    }
