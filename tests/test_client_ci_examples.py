"""The README's GitHub Actions workflow and GitLab CI job, read from the README and run step by step as the
CI systems would (bash, the job's variables, the secrets), against a live registry in production mode:
train, push with metrics, promote to staging, gate with --dry-run, promote to production. Only the
client's installation is skipped (it is installed here already) and the registry's URL is the test's."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.client_support import production_registry
from tests.live import ROOT

pytestmark = [pytest.mark.gunicorn, pytest.mark.xdist_group("client_ci_examples")]

TRAIN_PY = """\
import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--out")
parser.add_argument("--metrics")
args = parser.parse_args()
with open(args.out, "wb") as model:
    model.write(b"\\x08\\x07\\x12\\x07pytorch" + bytes(range(256)) * 64)
with open(args.metrics, "w") as metrics:
    json.dump({"accuracy": 0.93, "f1_score": 0.91}, metrics)
"""


def readme_yaml(heading: str) -> dict:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"#### {heading}\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(block)


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # GitHub's and GitLab's default: bash, stopping at the first failing command.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def ci_env(**variables: str) -> dict[str, str]:
    """A CI runner's environment: no terminal, the client and `python` on PATH, no registry settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CI"] = "true"
    env.update(variables)
    return env


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with production_registry(tmp_path_factory.mktemp("client-ci"), {"ci": "editor", "ci-deploy": "deployer"}) as live:
        yield live


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN_PY)
    return tmp_path


def deployed(base: str, token: str, target: str) -> list[str]:
    answer = requests.get(
        f"{base}/deployments",
        params={"model": "image_classifier", "target": target, "status": "active"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return [d["version"] for d in answer.json()["results"]]


def run_github_workflow(base: str, tokens: dict[str, str], checkout: Path, run_number: int) -> list[tuple[str, str]]:
    workflow = readme_yaml("GitHub Actions")
    (job,) = workflow["jobs"].values()
    expressions = {
        "github.run_number": str(run_number),
        "secrets.REGISTRY_TOKEN": tokens["editor"],
        "secrets.REGISTRY_DEPLOY_TOKEN": tokens["deployer"],
    }

    def evaluate(value) -> str:
        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: expressions[m.group(1)], str(value))

    outputs = []
    for step in job["steps"]:
        if "uses" in step or step["run"].startswith("pip install"):
            continue  # checkout, setup-python and installing the client: this machine has them
        variables = {**workflow["env"], **job.get("env", {}), **step.get("env", {})}
        env = ci_env(**{k: evaluate(v) for k, v in variables.items()})
        env.update(REGISTRY_URL=base, GITHUB_SHA="0123456789abcdef" * 2 + "01234567", GITHUB_RUN_ID="987654")
        done = bash(step["run"], env, checkout)
        assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
        outputs.append((step["name"], done.stdout))
    return outputs


def test_the_github_actions_workflow(registry, checkout):
    base, tokens = registry
    outputs = dict(run_github_workflow(base, tokens, checkout, run_number=41))
    assert outputs["Push with metrics"].startswith("pushed image_classifier:1.0.41")
    assert "would be allowed; nothing was deployed" in outputs["Gate on the production policy"]
    assert deployed(base, tokens["editor"], "staging") == deployed(base, tokens["editor"], "production") == ["1.0.41"]
    version = requests.get(
        f"{base}/models/image_classifier/versions/1.0.41", headers={"Authorization": f"Bearer {tokens['editor']}"}
    ).json()
    assert (version["accuracy"], version["f1_score"], version["status"]) == (0.93, 0.91, "testing")
    assert version["release_notes"].startswith("Commit 0123456789abcdef") and "run 987654" in version["release_notes"]

    # Re-running the same workflow run (a retried job) is safe: nothing changes, every step succeeds.
    again = dict(run_github_workflow(base, tokens, checkout, run_number=41))
    assert again["Push with metrics"].startswith("already registered, unchanged: image_classifier:1.0.41")
    assert deployed(base, tokens["editor"], "production") == ["1.0.41"]


def test_the_gitlab_ci_job(registry, checkout):
    base, tokens = registry
    job = readme_yaml("GitLab CI")["train-and-promote"]
    env = ci_env(
        REGISTRY_URL=base,
        REGISTRY_TOKEN=tokens["editor"],
        REGISTRY_DEPLOY_TOKEN=tokens["deployer"],
        CI_PIPELINE_IID="42",
        CI_COMMIT_SHA="fedcba98" * 5,
        CI_PIPELINE_URL="https://gitlab.example.com/ml/app/-/pipelines/4242",
    )
    for name, value in job["variables"].items():  # GitLab expands variables inside variables
        env[name] = string.Template(str(value)).safe_substitute(env)
    assert all(line.startswith("pip install") for line in job["before_script"])
    done = bash("\n".join(job["script"]), env, checkout)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "pushed image_classifier:1.0.42" in done.stdout
    assert "would be allowed; nothing was deployed" in done.stdout
    assert deployed(base, tokens["editor"], "production") == ["1.0.42"]
    assert deployed(base, tokens["editor"], "staging") == ["1.0.42"]
