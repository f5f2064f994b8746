"""The rest of `mvr` against a live registry: promote (and its dry run), rollback, ls, show, default,
models, versions, deployments, health; and the exit codes in production mode, with tokens."""

from __future__ import annotations

import json

import pytest
import requests

from tests.client_support import mvr_json, production_registry, run_mvr
from tests.live import running_registry

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_commands")]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("client-commands")
    files = tmp_path_factory.mktemp("client-commands-files")
    with running_registry(workdir) as base:
        for version in ("v1", "v2", "v3"):
            (files / f"{version}.onnx").write_bytes(f"weights of {version}".encode() * 100)
            mvr_json(
                "push", "ranker", version, str(files / f"{version}.onnx"),
                "--create-model", "--model-type", "classification", "--accuracy", "0.9", url=base,
            )  # fmt: skip
        yield base


def active_on(base: str, target: str) -> list[str]:
    found = requests.get(f"{base}/deployments", params={"model": "ranker", "target": target, "status": "active"})
    return [d["version"] for d in found.json()["results"]]


def test_promote_then_roll_back_a_target(live):
    base = live
    first = mvr_json("promote", "ranker", "v1", "--to", "staging", "--config", '{"replicas": 2}', url=base)
    assert first["deployment_status"] == "active" and first["deployment_config"] == {"replicas": 2}
    # Promoting what is already active is success, and changes nothing.
    assert mvr_json("promote", "ranker", "v1", "--to", "staging", url=base)["id"] == first["id"]
    second = run_mvr("promote", "ranker", "v2", "--to", "staging", "--deployed-by", "ci", url=base)
    assert second.returncode == 0 and second.stdout.startswith("ranker:v2 is active on staging")
    assert active_on(base, "staging") == ["v2"]

    rolled = mvr_json("rollback", "ranker", "--target", "staging", "--reason", "latency up 30%", url=base)
    assert rolled["rolled_back"]["version"] == "v2" and rolled["rolled_back"]["rollback_reason"] == "latency up 30%"
    assert rolled["restored"]["version"] == "v1"
    assert active_on(base, "staging") == ["v1"]
    history = mvr_json("deployments", "--model", "ranker", "--target", "staging", url=base)
    assert [(d["version"], d["deployment_status"]) for d in history] == [("v2", "rolled_back"), ("v1", "active")]
    table = run_mvr("deployments", "--model", "ranker", url=base).stdout.splitlines()
    assert table[0].split() == ["ID", "MODEL", "VERSION", "TARGET", "STATUS", "DEPLOYED", "AT", "BY"]

    by_id = mvr_json("rollback", "--deployment", str(first["id"]), url=base)
    assert by_id["restored"] is None and active_on(base, "staging") == []
    nothing = run_mvr("rollback", "ranker", "--target", "staging", url=base)
    assert nothing.returncode == 1 and "Nothing of model 'ranker' is active on target 'staging'" in nothing.stderr
    assert run_mvr("rollback", "ranker", url=base).returncode == 2


def test_a_dry_run_shows_the_registrys_policy_evaluation_and_deploys_nothing(live):
    base = live
    requests.post(f"{base}/targets", json={"name": "canary"}).raise_for_status()
    mvr_json("promote", "ranker", "v1", "--to", "canary", url=base)
    dry = run_mvr("promote", "ranker", "v3", "--to", "canary", "--dry-run", url=base)
    assert dry.returncode == 0, dry.stderr
    assert "now active there: v1" in dry.stdout
    assert "dry run (registry checks): the promotion would be allowed; nothing was deployed." in dry.stdout
    assert active_on(base, "canary") == ["v1"]

    # A policy on canary that v3 breaks: the dry run lists its rules and exits 3 (refused by a policy).
    policy = {"min_metrics": {"accuracy": 0.95}, "require_verified_file": True}
    requests.put(f"{base}/targets/canary/policy", json=policy).raise_for_status()
    try:
        dry = run_mvr("promote", "ranker", "v3", "--to", "canary", "--dry-run", url=base)
        assert dry.returncode == 3, (dry.stdout, dry.stderr)
        assert "[FAIL] min_metric: accuracy 0.9 < the minimum 0.95 seen=0.9 expected=0.95" in dry.stdout
        assert "[pass] file_verified: the file's sha256 was computed by the registry" in dry.stdout
        assert "the promotion would be refused; nothing was deployed." in dry.stdout
        as_json = mvr_json_any("promote", "ranker", "v3", "--to", "canary", "--dry-run", url=base)
        assert as_json["evaluated_by"] == "registry" and as_json["allowed"] is False
        assert [(c["rule"], c["passed"]) for c in as_json["checks"]] == [("min_metric", False), ("file_verified", True)]

        # The deploy itself: a 409 listing the rules, exit 3.
        refused = run_mvr("promote", "ranker", "v3", "--to", "canary", url=base)
        assert refused.returncode == 3
        assert "The promotion policy of 'canary' refuses ranker:v3: min_metric: accuracy 0.9 <" in refused.stderr
        assert '"rule": "min_metric"' in refused.stderr and "[FAIL]" in refused.stderr
        as_json = mvr_json_any("promote", "ranker", "v3", "--to", "canary", url=base)
        assert as_json["exit_code"] == 3 and as_json["status"] == 409 and len(as_json["body"]["checks"]) == 2
        assert active_on(base, "canary") == ["v1"]
    finally:
        requests.delete(f"{base}/targets/canary/policy").raise_for_status()

    # A version without its file is refused by the registry's own rules, policy or not: an error (exit 1).
    requests.post(f"{base}/models/ranker/versions", json={"version": "nofile", "format": "onnx"}).raise_for_status()
    refused = run_mvr("promote", "ranker", "nofile", "--to", "canary", "--dry-run", url=base)
    assert refused.returncode == 1 and "has no file" in refused.stderr
    assert active_on(base, "canary") == ["v1"]


def mvr_json_any(*args: str, url: str) -> dict:
    """`mvr --json ...` whatever its exit code."""
    return json.loads(run_mvr("--json", *args, url=url).stdout)


def test_a_refused_deploy_is_an_error_naming_the_rule(live):
    base = live
    requests.post(f"{base}/models/ranker/versions", json={"version": "empty", "format": "onnx"}).raise_for_status()
    refused = run_mvr("promote", "ranker", "empty", "--to", "staging", url=base)
    assert refused.returncode == 1 and "has no file" in refused.stderr and "HTTP 409" in refused.stderr


def test_listing_and_showing(live):
    base = live
    models = mvr_json("ls", url=base)
    assert [(m["name"], m["default_version"]) for m in models] == [("ranker", "v1")]
    listed = run_mvr("ls", url=base).stdout.splitlines()
    assert listed[0].split() == ["NAME", "TYPE", "DEFAULT", "ACTIVE", "DESCRIPTION"]
    assert listed[1].split()[:4] == ["ranker", "classification", "v1", "yes"]
    versions = mvr_json("ls", "ranker", "--limit", "2", url=base)
    assert len(versions) == 2
    text = run_mvr("ls", "ranker", url=base).stdout
    assert "v1 *" in text and "no file" in text
    assert mvr_json("show", "ranker", url=base)["default_version"] == "v1"
    assert mvr_json("show", "ranker:v2", url=base)["accuracy"] == 0.9
    shown = run_mvr("show", "ranker:default", url=base)
    assert shown.returncode == 0 and "checksum" in shown.stdout and "v1" in shown.stdout
    missing = run_mvr("show", "ranker:v9", url=base)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_default_models_and_versions(live):
    base = live
    assert mvr_json("default", "ranker", "v2", url=base)["is_default"] is True
    assert requests.get(f"{base}/models/ranker").json()["default_version"] == "v2"

    made = mvr_json("models", "create", "scratch", "--type", "audio", "--description", "tmp", url=base)
    assert made["model_type"] == "audio" and made["description"] == "tmp"
    exists = run_mvr("models", "create", "scratch", "--type", "audio", url=base)
    assert exists.returncode == 1 and "already exists" in exists.stderr
    assert run_mvr("models", "create", "scratch", "--type", "audio", "--exist-ok", url=base).returncode == 0
    changed = mvr_json("models", "update", "scratch", "--inactive", "--description", "gone soon", url=base)
    assert changed["is_active"] is False and changed["description"] == "gone soon"
    assert run_mvr("models", "update", "scratch", url=base).returncode == 2

    updated = mvr_json("versions", "update", "ranker", "v3", "--status", "approved", "--recall", "0.7", url=base)
    assert updated["status"] == "approved" and updated["recall"] == 0.7
    bad = run_mvr("versions", "update", "ranker", "v3", "--status", "shiny", url=base)
    assert bad.returncode == 1 and "status" in bad.stderr and "approved" in bad.stderr  # the registry's message
    assert run_mvr("versions", "delete", "ranker", "empty", url=base).returncode == 0
    assert requests.get(f"{base}/models/ranker/versions/empty").status_code == 404
    assert run_mvr("models", "delete", "scratch", url=base).returncode == 0
    assert requests.get(f"{base}/models/scratch").status_code == 404


def test_health_and_usage(live):
    base = live
    assert mvr_json("health", url=base)["status"] == "healthy"
    assert run_mvr("health", url="ftp://example.com").returncode == 2
    assert run_mvr("promote", "ranker", "v1", url=base).returncode == 2  # --to is required
    assert run_mvr("frobnicate", url=base).returncode == 2
    # Options go before or after the command.
    assert json.loads(run_mvr("ls", "--json", url=base).stdout) == json.loads(run_mvr("--json", "ls", url=base).stdout)
    assert run_mvr("--version").stdout.startswith("mvr ")


# --- production mode: tokens, and what 401 and 403 mean to a script ----------------------------------
@pytest.fixture(scope="module")
def production(tmp_path_factory):
    users = {"ci-editor": "editor", "ci-deployer": "deployer"}
    with production_registry(tmp_path_factory.mktemp("client-production"), users, workers=1) as live:
        yield live


def test_tokens_and_the_exit_codes_of_refusals(production, tmp_path):
    base, tokens = production
    (tmp_path / "m.onnx").write_bytes(b"weights" * 100)
    anonymous = run_mvr("ls", url=base)
    assert anonymous.returncode == 4 and "HTTP 401" in anonymous.stderr
    assert run_mvr("ls", url=base, token="mvr_not_a_token").returncode == 4

    editor, deployer = tokens["editor"], tokens["deployer"]
    push = ("push", "secure", "v1", str(tmp_path / "m.onnx"), "--create-model", "--model-type", "audio")
    assert mvr_json(*push, url=base, token=editor)["outcome"] == "created"
    assert mvr_json("promote", "secure", "v1", "--to", "staging", url=base, token=editor)["deployed_by"] == "ci-editor"
    forbidden = run_mvr("promote", "secure", "v1", "--to", "production", url=base, token=editor)
    assert forbidden.returncode == 4 and "deployer role" in forbidden.stderr
    # The token may also come from --token.
    deployed = run_mvr("--token", deployer, "promote", "secure", "v1", "--to", "production", url=base)
    assert deployed.returncode == 0, deployed.stderr
    assert mvr_json("pull", "secure@production", "-o", str(tmp_path / "p.onnx"), url=base, token=editor)["size"] == 700


def test_compare_versions(live):
    base = live
    mvr_json("versions", "update", "ranker", "v2", "--accuracy", "0.95", url=base)
    mvr_json("promote", "ranker", "v3", "--to", "production", url=base)
    result = mvr_json("compare", "ranker:v1", "ranker:v2", "ranker@production", url=base)
    assert [v["asked"] for v in result["versions"]] == ["ranker:v1", "ranker:v2", "ranker:@production"]
    assert result["versions"][2]["version"] == "v3"
    accuracy = next(m for m in result["metrics"] if m["name"] == "accuracy")
    assert accuracy["best"] == ["ranker:v2"] and accuracy["values"]["ranker:@production"] == 0.9
    text = run_mvr("compare", "ranker:v1", "ranker:v2", url=base)
    assert text.returncode == 0
    assert text.stdout.splitlines()[1].split() == ["accuracy", "(higher)", "0.9", "0.95", "*", "(+5.6%)"]
    # Over the last day of history: the registration points (v2's 0.9, then its change to 0.95).
    history = mvr_json("compare", "ranker:v1", "ranker:v2", "--window", "1d", "--source", "registration", url=base)
    assert history["basis"]["kind"] == "history" and history["versions"][1]["points"]["accuracy"] == 2
    assert history["versions"][1]["metrics"]["accuracy"] == pytest.approx(0.925)
    one = run_mvr("compare", "ranker:v1", url=base)
    assert one.returncode == 1 and "2 to 20 model:version names" in one.stderr


def test_log_and_list_metric_history(live):
    base = live
    logged = mvr_json("metrics", "log", "ranker", "v1", "ctr=0.031", "p99_latency=12.5", "--source", "canary", url=base)
    assert logged == {"recorded": 2}
    points = mvr_json("metrics", "ls", "ranker", "v1", "--source", "canary", url=base)
    assert sorted((p["name"], p["value"]) for p in points) == [("ctr", 0.031), ("p99_latency", 12.5)]
    table = run_mvr("metrics", "ls", "ranker", "v1", "--name", "ctr", url=base).stdout.splitlines()
    assert table[0].split() == ["NAME", "VALUE", "SOURCE", "STEP", "AT"] and table[1].split()[:3] == [
        "ctr",
        "0.031",
        "canary",
    ]
    bad = run_mvr("metrics", "log", "ranker", "v1", "bad name=1", url=base)
    assert bad.returncode == 1 and "points[0].name" in bad.stderr
    assert run_mvr("metrics", "log", "ranker", "v1", "ctr=abc", url=base).returncode == 2


def test_approve_for_a_target(production, tmp_path):
    """In production mode, with a deployer's token: the approval names the token's user."""
    base, tokens = production
    (tmp_path / "g.onnx").write_bytes(b"gate weights" * 100)
    push = ("push", "gate", "v1", str(tmp_path / "g.onnx"), "--create-model", "--model-type", "audio")
    assert mvr_json(*push, url=base, token=tokens["editor"])["outcome"] == "created"
    approve = ("approve", "gate", "v1", "--for", "production")
    approval = mvr_json(*approve, "--comment", "ok", url=base, token=tokens["deployer"])
    assert approval["user"] == "ci-deployer" and approval["target"] == "production"
    again = run_mvr(*approve, url=base, token=tokens["deployer"])
    assert again.returncode == 1 and "approved" in again.stderr
