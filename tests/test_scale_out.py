"""More than one app server (issue #13 §5): two gunicorn processes on two ports share one database and one
S3 bucket, and a round-robin client spreads each race over both. The database's row locks and
constraints, not anything held in one process, decide the winners, and the throttles count across both."""

from __future__ import annotations

import itertools
import secrets
import threading

import pytest
import requests

from tests.client_support import production_registries
from tests.live import all_at_once
from tests.s3 import CREDENTIALS

THREADS = 8
pytestmark = [pytest.mark.gunicorn, pytest.mark.s3, pytest.mark.xdist_group("scale-out")]


class RoundRobin:
    """A trivial load balancer: each request goes to the next server."""

    def __init__(self, bases: list[str]) -> None:
        self._next = itertools.cycle(bases)
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        with self._lock:
            return next(self._next) + path

    def __getattr__(self, method: str):
        return lambda path, **kwargs: getattr(requests, method)(self.url(path), **kwargs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_endpoint):
    workdir = tmp_path_factory.mktemp("scale-out")
    bucket = f"scale-out-{secrets.token_hex(6)}"
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_keys()).create_bucket(Bucket=bucket)
    env = {
        **CREDENTIALS,
        "REGISTRY_S3_BUCKET": bucket,
        "REGISTRY_S3_ENDPOINT_URL": s3_endpoint,
        "REGISTRY_S3_REGION": "us-east-1",
        "REGISTRY_THROTTLE_WRITES": "40/min",  # the race test writes 32 times as the admin
        "REGISTRY_AUTH_FAILURES_PER_MINUTE": "6",
    }
    users = {"lead": "admin", "busy": "editor"}
    with production_registries(workdir, users, servers=2, workers=2, extra_env=env) as (bases, tokens):
        yield RoundRobin(bases), bases, tokens, bucket, s3_endpoint


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": "testing"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_one_winner_per_version_one_default_one_active_deployment(cluster):
    lb, bases, tokens, bucket, endpoint = cluster
    lead = auth(tokens["admin"])
    created = lb.post("/models", json={"name": "shared", "model_type": "audio"}, headers=lead)
    assert created.status_code == 201, created.text
    payload = b"the same weights " * 4096

    def post_version():
        return lb.post(
            "/models/shared/versions",
            data={"version": "v1", "format": "onnx"},
            files={"file": ("m.onnx", payload)},
            headers=lead,
        )

    statuses = sorted(r.status_code for r in all_at_once([post_version] * THREADS))
    assert statuses == [200] * (THREADS - 1) + [201]  # the same content: registered once, the rest get it (200)

    for n in range(2, THREADS + 1):
        made = lb.post(
            "/models/shared/versions",
            data={"version": f"v{n}", "format": "onnx"},
            files={"file": ("m.onnx", f"weights {n}".encode())},
            headers=lead,
        )
        assert made.status_code == 201, made.text
    set_default = [
        (lambda n=n: lb.post(f"/models/shared/versions/v{n}/default", headers=lead)) for n in range(1, THREADS + 1)
    ]
    assert {r.status_code for r in all_at_once(set_default)} == {200}
    for base in bases:  # both servers see the one default
        defaults = requests.get(f"{base}/models/shared/versions?is_default=true", headers=lead).json()["results"]
        assert len(defaults) == 1

    deploys = [
        (
            lambda n=n: lb.post(
                "/deploy",
                json={"model_name": "shared", "version": f"v{n}", "deployment_target": "production"},
                headers=lead,
            )
        )
        for n in range(1, THREADS + 1)
    ]
    assert {r.status_code for r in all_at_once(deploys)} == {201}
    active = lb.get("/deployments?model=shared&target=production&status=active", headers=lead)
    assert active.status_code == 200, active.text
    assert len(active.json()["results"]) == 1

    import boto3

    objects = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys()).list_objects_v2(
        Bucket=bucket
    )
    assert len(objects.get("Contents", [])) == THREADS  # one object per distinct file, none left by losers
    for n in (1, 5):  # each server serves what the other stored
        for base in bases:
            got = requests.get(f"{base}/models/shared/versions/v{n}/file", headers=lead)
            assert got.status_code == 200 and got.content == (payload if n == 1 else f"weights {n}".encode())


def test_write_throttle_counts_across_both_servers(cluster):
    lb, bases, tokens, *_ = cluster
    busy = auth(tokens["editor"])
    assert lb.post("/models", json={"name": "throttled", "model_type": "audio"}, headers=busy).status_code == 201
    writes = [lb.patch("/models/throttled", json={"description": str(n)}, headers=busy).status_code for n in range(45)]
    assert writes == [200] * 39 + [429] * 6  # 40 writes a minute in all, wherever they land


# Last: it blocks the tests' address for bad tokens.
def test_failed_token_limit_counts_across_both_servers(cluster):
    lb, bases, tokens, *_ = cluster
    statuses = [lb.get("/models", headers=auth("mvr_not-a-real-token")).status_code for _ in range(10)]
    assert statuses[:6] == [401] * 6  # the limit is 6 per address, spread over two servers
    assert set(statuses[6:]) == {429}
