"""manage.py deliver_webhooks: in-process with --once, and as the process `make run` and the Docker stack
start, against a live registry, killed with SIGKILL mid-run and started again (two of them): every event
arrives at least once, in order per model, each verified with the standardwebhooks library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from standardwebhooks import Webhook

from models_app import services
from registry_site import webhooks
from registry_site.models import WebhookDelivery
from tests.live import ROOT, running_registry
from tests.webhook_support import receiver


@pytest.mark.django_db
def test_once_sends_what_is_due_and_exits():
    with receiver() as hook:
        webhooks.create_subscription(url=hook.url, events=["model.created"])
        services.create_model(name="one", model_type="classification")
        services.create_model(name="two", model_type="classification")
        out = StringIO()
        call_command("deliver_webhooks", "--once", stdout=out)
    assert "Made 2 webhook delivery attempt(s)." in out.getvalue()
    assert len(hook.requests) == 2
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db
def test_once_with_nothing_due_makes_no_attempt():
    out = StringIO()
    call_command("deliver_webhooks", "--once", stdout=out)
    assert "Made 0 webhook delivery attempt(s)." in out.getvalue()


def _worker(env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "deliver_webhooks"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.mark.gunicorn
@pytest.mark.subprocess
def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    models = [f"m{n}" for n in range(8)]
    env: dict[str, str] = {}
    settings_env = {"REGISTRY_WEBHOOK_TIMEOUT": "1", "REGISTRY_WEBHOOK_POLL_SECONDS": "1"}
    with receiver() as hook, running_registry(tmp_path, extra_env=settings_env, workers=1, setup=env.update) as base:
        hook.delay = 0.15  # slow enough to kill the worker mid-run
        created = requests.post(f"{base}/webhooks", json={"url": hook.url, "events": ["*"]}, timeout=10)
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        for name in models:  # three events per model: created, updated twice
            assert requests.post(f"{base}/models", json={"name": name, "model_type": "classification"}).ok
        for round_ in range(2):
            for name in models:
                assert requests.patch(f"{base}/models/{name}", json={"description": f"r{round_}"}).ok
        expected = 3 * len(models)

        log = open(tmp_path / "worker.log", "wb")
        first = _worker(env, log)
        deadline = time.monotonic() + 60
        while len(hook.requests) < 5:
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert len(set(hook.ids())) < expected  # it really was killed mid-run

        # Two workers now (row locks keep them from sending the same delivery twice); the killed one's
        # claims come back when their lease (timeout x 2 + 5 s) is over.
        again = [_worker(env, log), _worker(env, log)]
        try:
            hook.wait_for(expected, timeout=90)
        finally:
            for worker in again:
                worker.send_signal(signal.SIGTERM)  # a clean stop after the attempt in flight
            codes = [worker.wait(timeout=30) for worker in again]
            log.close()
        assert codes == [0, 0], (tmp_path / "worker.log").read_text()

    verifier = Webhook(secret)
    first_seen: dict[str, dict] = {}
    for request in hook.requests:
        first_seen.setdefault(request.headers["webhook-id"], verifier.verify(request.body, request.headers))
    assert len(first_seen) == expected
    # At least once, and at most once more for the one in flight when the worker was killed.
    assert len(hook.requests) - expected <= 1
    for name in models:
        in_order = [
            (e["type"], e["data"]["changes"].get("description"))
            for e in first_seen.values()
            if e["data"]["model"] == name
        ]
        assert in_order == [("model.created", ""), ("model.updated", ["", "r0"]), ("model.updated", ["r0", "r1"])]
