"""The Python API the `mvr` command is built on, used directly against a live registry."""

from __future__ import annotations

import pytest
import requests

from mvr import ApiError, Capabilities, NotFound, Registry, VersionMismatch
from mvr._http import _retry_after
from mvr.client import _request_properties, parse_ref, policy_checks
from tests.live import running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_api")]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("client-api"), workers=1) as url:
        yield url


def test_push_pull_deploy_from_python(base, tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_URL", base)
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 torch " * 500)
    with Registry() as registry:  # the URL from REGISTRY_URL
        assert registry.url == base
        pushed = registry.push(
            "api_model", "1.0.0+cpu", tmp_path / "model.pt", create_model=True, model_type="audio",
            metrics={"accuracy": 0.9, "MAP": 0.4}, input_shape=[1, 16000], release_notes="from Python",
        )  # fmt: skip
        assert pushed.outcome == "created" and pushed.version["format"] == "pytorch"  # guessed from .pt
        assert pushed.version["mAP"] == 0.4 and pushed.version["version"] == "1.0.0+cpu"
        assert registry.push("api_model", "1.0.0+cpu", tmp_path / "model.pt", metrics={"accuracy": 0.9}).outcome == (
            "unchanged"
        )
        with pytest.raises(VersionMismatch) as mismatch:
            registry.push("api_model", "1.0.0+cpu", tmp_path / "model.pt", metrics={"accuracy": 0.5})
        assert mismatch.value.differences == {"accuracy": (0.9, 0.5)}

        deployment = registry.deploy("api_model", "1.0.0+cpu", "staging")
        assert registry.active_deployment("api_model", "staging")["id"] == deployment["id"]
        pulled = registry.pull("api_model@staging", tmp_path / "copy.pt")
        assert (
            pulled.outcome == "downloaded"
            and (tmp_path / "copy.pt").read_bytes() == (tmp_path / "model.pt").read_bytes()
        )
        evaluation = registry.evaluate_deploy("api_model", "1.0.0+cpu", "production")
        # The registry evaluates the promotion policies (production has none here): no rule, allowed.
        assert evaluation.allowed and evaluation.evaluated_by == "registry" and evaluation.active is None
        assert evaluation.checks == [] and evaluation.body["deployment_target"] == "production"


def test_lists_follow_the_cursor_pages(base):
    registry = Registry(base)
    registry.page_size = 2
    for n in range(5):
        registry.create_model(f"paged_{n}", "audio")
    names = [m["name"] for m in registry.models() if m["name"].startswith("paged_")]
    assert names == [f"paged_{n}" for n in range(5)]


def test_errors_carry_the_registry_message_and_fields(base):
    registry = Registry(base)
    with pytest.raises(ApiError) as bad:
        registry.create_model("bad name!", "audio")
    assert bad.value.status == 400 and "name" in bad.value.errors
    with pytest.raises(NotFound):
        registry.version("no_such_model", "v1")


def test_the_registry_schema_is_read_for_capabilities(base):
    schema = requests.get(f"{base}/openapi.json").json()
    assert {"version", "format", "accuracy"} <= _request_properties(schema, "/models/{name}/versions", "post")
    assert {"model_name", "deployment_target"} <= _request_properties(schema, "/deploy", "post")
    capabilities = Registry(base).capabilities
    assert capabilities == Capabilities.from_openapi(schema)
    assert Capabilities.from_openapi({}) == Capabilities() == Registry("http://127.0.0.1:9", retries=0).capabilities


def test_refs_and_policy_answers():
    assert parse_ref("m") == ("m", None, None)
    assert parse_ref("m:v1.0") == ("m", "v1.0", None)
    assert parse_ref("m@production") == ("m", None, "production")
    checks = [{"rule": "min_metric", "passed": False}]
    assert policy_checks({"detail": "x", "checks": checks}) == checks
    assert policy_checks({"evaluation": {"rules": checks}}) == checks
    assert policy_checks({"detail": "Version 'v1' is archived."}) == []


def test_retry_after_in_seconds_or_as_a_date():
    answer = requests.Response()
    for value, expected in (("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)):
        answer.headers["Retry-After"] = value
        assert _retry_after(answer) == expected
