"""Signed webhooks (issue #10 §6): events written to the outbox in the change's transaction, delivered to
a receiver on loopback by the worker's own functions, signed so that the standardwebhooks library (an
independent implementation of the specification) verifies them; retries with backoff, ordering per
model, auto-disable, redelivery, the SSRF rule and who may manage subscriptions.

The worker running as a process (and killed mid-run) is in test_command_deliver_webhooks.py."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from deployments_app import services as deployments
from models_app import services
from registry_site import webhooks
from registry_site.models import AuditEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription
from registry_site.permissions import Operator
from tests.conftest import deploy, production_mode, upload
from tests.webhook_support import Receiver, receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook():
    with receiver() as state:
        yield state


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() under the test's control (the worker's schedule reads it)."""

    class Clock:
        now: datetime = timezone.now()

        def advance(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

    fake = Clock()
    monkeypatch.setattr(timezone, "now", lambda: fake.now)
    return fake


def subscribe(api, url: str, **body) -> dict:
    response = api.post("/webhooks", {"url": url, "events": ["*"], **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def received(hook: Receiver, secret: str) -> list[dict]:
    """Every request the receiver got, each verified by the standardwebhooks library."""
    verifier = Webhook(secret)
    return [verifier.verify(r.body, r.headers) for r in hook.requests]


def run_worker() -> int:
    return webhooks.run_worker(once=True)


# --- Signing and payloads ---------------------------------------------------------------------------
def test_a_change_is_delivered_signed_as_standard_webhooks_verifies_it(api, hook):
    subscription = subscribe(api, hook.url)
    assert subscription["secret"].startswith("whsec_")
    assert api.post("/models", {"name": "fraud", "model_type": "classification"}, format="json").status_code == 201

    assert run_worker() == 1
    [event] = received(hook, subscription["secret"])
    assert event["type"] == "model.created"
    assert event["data"]["object"]["name"] == "fraud"
    assert event["data"]["model"] == "fraud"
    [request] = hook.requests
    assert request.path == "/hooks"
    assert request.headers["webhook-id"].startswith("msg_")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.message_id) == ("delivered", 1, request.headers["webhook-id"])
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code == 200 and attempt.response_excerpt == "answered 200"
    # Another secret does not verify it: the signature is the secret's.
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks.new_secret()).verify(request.body, request.headers)


def test_every_kind_of_change_is_an_event(api, hook, make_version):
    subscription = subscribe(api, hook.url)
    model = services.create_model(name="churn", model_type="classification")
    services.update_model(model=model, changes={"description": "who leaves"})
    v1 = make_version(model, "v1", b"one")  # the first with a file: also the default
    v2 = make_version(model, "v2", b"two")
    v3 = make_version(model, "v3", b"three")
    services.update_version(version=v2, changes={"release_notes": "better"})
    services.set_default_version(version=v2)
    deployed = deployments.deploy_version(version=v1, target="staging", acting_user=Operator()).deployment
    deployments.rollback_deployment(deployment=deployed, reason="regressed")
    services.delete_version(version=v3)
    target = deployments.create_target(name="edge-eu")
    services.delete_model(model=model)

    assert run_worker() == 13
    events = received(hook, subscription["secret"])
    # In order per model (the target's event has no model: it went out beside them).
    assert [e["type"] for e in events if e["data"]["model"] == "churn"] == [
        "model.created",
        "model.updated",
        "version.created",
        "version.default_changed",
        "version.created",
        "version.created",
        "version.updated",
        "version.default_changed",
        "deployment.created",
        "deployment.rolled_back",
        "version.deleted",
        "model.deleted",
    ]
    assert [e["type"] for e in events if e["data"]["model"] is None] == ["target.created"]
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["model.updated"]["changes"] == {"description": ["", "who leaves"]}
    assert by_type["version.default_changed"]["object"]["version"] == "v2"
    assert by_type["version.default_changed"]["object"]["is_default"] is True
    assert by_type["deployment.created"]["object"]["deployment_target"] == "staging"
    assert by_type["deployment.rolled_back"]["object"]["deployment_status"] == "rolled_back"
    assert by_type["deployment.rolled_back"]["changes"]["reason"] == "regressed"
    assert by_type["version.deleted"]["object"] == {"repr": "churn:v3", "deleted": True}
    assert by_type["target.created"]["object"]["name"] == target.name
    assert sorted(by_type["model.deleted"]["changes"]["versions"]) == ["v1", "v2"]
    assert all(e["timestamp"] for e in events) and len({r.headers["webhook-id"] for r in hook.requests}) == 13


def test_the_events_and_model_filter_choose_what_a_subscription_gets(api, hook, make_version):
    deploys = subscribe(api, hook.url, events=["deployment.created", "deployment.rolled_back"])
    fraud_only = subscribe(api, hook.url, events=["*"], model_filter="fraud-*")
    fraud = services.create_model(name="fraud-eu", model_type="classification")
    services.create_model(name="churn", model_type="classification")
    version = make_version(fraud, "v1")
    deployments.deploy_version(version=version, target="staging", acting_user=Operator())

    got = {
        subscription["id"]: list(
            WebhookDelivery.objects.filter(subscription_id=subscription["id"])
            .order_by("id")
            .values_list("event_type", flat=True)
        )
        for subscription in (deploys, fraud_only)
    }
    assert got[deploys["id"]] == ["deployment.created"]
    assert got[fraud_only["id"]] == [
        "model.created",
        "version.created",
        "version.default_changed",
        "deployment.created",
    ]
    # Target events name no model: a model filter leaves them out.
    deployments.create_target(name="edge-eu")
    assert WebhookDelivery.objects.filter(subscription_id=fraud_only["id"], event_type="target.created").count() == 0


# --- The outbox and the transaction -------------------------------------------------------------------
def test_a_change_that_rolls_back_leaves_no_event(api, hook):
    subscribe(api, hook.url)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.create_model(name="ghost", model_type="classification")
            assert WebhookDelivery.objects.count() == 1  # written in the change's transaction...
            raise RuntimeError("the caller fails after the service")
    assert WebhookDelivery.objects.count() == 0  # ...and gone with it
    # A refused request (409: the model exists) writes none either.
    services.create_model(name="real", model_type="classification")
    assert api.post("/models", {"name": "real", "model_type": "classification"}, format="json").status_code == 409
    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["model.created"]
    assert run_worker() == 1 and len(hook.requests) == 1


def test_no_subscription_no_outbox_rows(api):
    services.create_model(name="quiet", model_type="classification")
    assert WebhookDelivery.objects.count() == 0


def test_a_disabled_subscription_gets_no_new_events(api, hook):
    subscription = subscribe(api, hook.url, enabled=False)
    services.create_model(name="quiet", model_type="classification")
    assert WebhookDelivery.objects.filter(subscription_id=subscription["id"]).count() == 0


# --- Retries, ordering, giving up -----------------------------------------------------------------------
def test_failures_are_retried_with_backoff_then_delivered(api, hook, clock, settings):
    settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]
    subscription = subscribe(api, hook.url)
    hook.statuses = [500, 503]
    services.create_model(name="flaky", model_type="classification")
    delivery = WebhookDelivery.objects.get()

    assert run_worker() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert 4.5 <= (delivery.next_attempt_at - clock.now).total_seconds() <= 5.5  # 5 s ± 10% jitter
    assert run_worker() == 0  # not due yet
    clock.advance(6)
    assert run_worker() == 1
    delivery.refresh_from_db()
    assert 270 <= (delivery.next_attempt_at - clock.now).total_seconds() <= 330
    clock.advance(331)
    assert run_worker() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)

    log = list(WebhookAttempt.objects.order_by("number").values_list("number", "status_code", "error"))
    assert log == [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, "")]
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 1  # one message, three attempts
    assert [e["type"] for e in received(hook, subscription["secret"])] == ["model.created"] * 3
    assert WebhookSubscription.objects.get().consecutive_failures == 0


def test_a_connection_refused_is_a_failed_attempt(api, clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    subscribe(api, f"http://127.0.0.1:{port}/gone")
    services.create_model(name="nobody", model_type="classification")
    assert run_worker() == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "NewConnectionError" in attempt.error
    assert WebhookDelivery.objects.get().status == "pending"


def test_an_unexpected_error_in_an_attempt_is_a_failed_attempt(api, hook):
    subscribe(api, hook.url)
    services.create_model(name="odd", model_type="classification")

    def broken(url, **kwargs):
        raise RuntimeError("the network stack fell over")

    assert webhooks.deliver_due(send=broken) == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error == "RuntimeError: the network stack fell over"
    assert WebhookDelivery.objects.get().status == "pending"


def test_events_of_one_model_are_delivered_in_order(api, hook, clock, settings):
    settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE = [10]
    subscription = subscribe(api, hook.url)
    hook.statuses = [500]  # the first event of model a fails once
    a = services.create_model(name="a", model_type="classification")
    services.update_model(model=a, changes={"description": "second"})
    services.create_model(name="b", model_type="classification")

    run_worker()
    # a's second event waits behind its first; b's goes.
    assert [(e["type"], e["data"]["model"]) for e in received(hook, subscription["secret"])] == [
        ("model.created", "a"),
        ("model.created", "b"),
    ]
    clock.advance(12)
    run_worker()
    assert [(e["type"], e["data"]["model"]) for e in received(hook, subscription["secret"])][2:] == [
        ("model.created", "a"),
        ("model.updated", "a"),
    ]


def test_a_worker_whose_claim_ran_out_leaves_the_delivery_to_the_one_that_took_it(api, hook, clock):
    subscribe(api, hook.url)
    services.create_model(name="contended", model_type="classification")
    [(delivery_id, first_lease)] = webhooks.claim_due()
    assert webhooks.claim_due() == []  # claimed: nobody else gets it meanwhile
    clock.advance((first_lease - clock.now).total_seconds() + 1)  # the first worker stalled past its lease
    [(same_id, second_lease)] = webhooks.claim_due()
    assert same_id == delivery_id and second_lease > first_lease
    assert webhooks.deliver(delivery_id, lease=first_lease) is None  # its claim is gone: it sends nothing
    assert webhooks.deliver(delivery_id, lease=second_lease).succeeded
    assert len(hook.requests) == 1 and WebhookDelivery.objects.get().attempts == 1


def test_a_delivery_whose_schedule_is_over_fails_and_the_next_one_goes(api, hook, clock, settings):
    settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE = [1]
    settings.REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES = 100
    subscribe(api, hook.url)
    hook.statuses = [500, 500]
    a = services.create_model(name="a", model_type="classification")
    services.update_model(model=a, changes={"description": "later"})
    run_worker()
    clock.advance(2)
    run_worker()
    first, second = WebhookDelivery.objects.order_by("id")
    assert (first.status, first.attempts) == ("failed", 2)
    assert (second.status, second.attempts) == ("delivered", 1)


def test_a_subscription_failing_long_enough_is_disabled_and_audited(api, hook, clock, settings):
    settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE = [40] * 10
    settings.REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.REGISTRY_WEBHOOK_DISABLE_AFTER_SECONDS = 60
    subscription = subscribe(api, hook.url)
    hook.statuses = [500] * 10
    services.create_model(name="down", model_type="classification")
    for _ in range(3):  # failures at 0 s, 45 s, 90 s: the third is both the 3rd and past 60 s
        assert WebhookSubscription.objects.get().enabled
        assert run_worker() == 1
        clock.advance(45)  # past 40 s + 10% jitter
    row = WebhookSubscription.objects.get()
    assert not row.enabled and row.consecutive_failures == 3 and row.disabled_at is not None
    assert "3 failed attempts in a row" in row.disabled_reason
    assert AuditEvent.objects.filter(action="disable_webhook", object_type="webhook").count() == 1
    clock.advance(1000)
    assert run_worker() == 0 and len(hook.requests) == 3  # nothing more is sent
    # Enabling it again clears the streak, and what was pending goes out.
    hook.statuses = []
    response = api.patch(f"/webhooks/{subscription['id']}", {"enabled": True}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["consecutive_failures"] == 0 and response.json()["disabled_at"] is None
    assert run_worker() == 1
    assert WebhookDelivery.objects.get().status == "delivered"


def test_the_worker_forgets_finished_deliveries_after_the_keep_days(api, hook, clock, settings):
    settings.REGISTRY_WEBHOOK_KEEP_DAYS = 30
    settings.REGISTRY_WEBHOOK_RETRY_SCHEDULE = [3600]
    subscribe(api, hook.url)
    hook.statuses = [200, 500]
    services.create_model(name="old-news", model_type="classification")
    services.create_model(name="still-failing", model_type="classification")
    run_worker()
    assert sorted(WebhookDelivery.objects.values_list("status", flat=True)) == ["delivered", "pending"]
    clock.advance(31 * 86400)
    run_worker()  # the pending one is sent (and delivered) now; the old delivered one goes
    assert list(WebhookDelivery.objects.values_list("ordering_key", "status")) == [("model:still-failing", "delivered")]
    assert WebhookAttempt.objects.filter(delivery__ordering_key="model:old-news").count() == 0


# --- Redelivery --------------------------------------------------------------------------------------------
def test_redeliver_sends_the_same_message_again(api, hook):
    subscription = subscribe(api, hook.url)
    services.create_model(name="again", model_type="classification")
    run_worker()
    delivery = WebhookDelivery.objects.get()
    base = f"/webhooks/{subscription['id']}/deliveries"
    listed = api.get(base).json()["results"]
    assert [(d["id"], d["status"], d["event_type"]) for d in listed] == [(delivery.pk, "delivered", "model.created")]
    detail = api.get(f"{base}/{delivery.pk}").json()
    assert detail["payload"]["type"] == "model.created"
    assert [a["status_code"] for a in detail["attempt_log"]] == [200]

    response = api.post(f"{base}/{delivery.pk}/redeliver")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "pending"
    assert run_worker() == 1
    assert [r.headers["webhook-id"] for r in hook.requests] == [delivery.message_id] * 2
    assert [a["number"] for a in api.get(f"{base}/{delivery.pk}").json()["attempt_log"]] == [2, 1]
    assert api.get(f"{base}?status=delivered").json()["results"][0]["id"] == delivery.pk
    assert api.get(f"{base}?status=nope").status_code == 400
    assert api.get(f"{base}?colour=red").status_code == 400
    assert api.get(f"{base}/999999").status_code == 404
    assert api.get("/webhooks/999999/deliveries").status_code == 404

    api.patch(f"/webhooks/{subscription['id']}", {"enabled": False}, format="json")
    refused = api.post(f"{base}/{delivery.pk}/redeliver")
    assert refused.status_code == 409 and "enabled" in refused.json()["errors"]


# --- The API's rules -----------------------------------------------------------------------------------
def test_the_secret_is_shown_once_and_may_be_given(api, hook):
    created = subscribe(api, hook.url, description="ci", model_filter="fraud-*")
    shown = api.get(f"/webhooks/{created['id']}").json()
    assert "secret" not in shown and shown["description"] == "ci" and shown["model_filter"] == "fraud-*"
    assert "secret" not in api.get("/webhooks").json()["results"][0]
    mine = "whsec_" + "A" * 32
    assert subscribe(api, hook.url, secret=mine)["secret"] == mine
    patched = api.patch(f"/webhooks/{created['id']}", {"secret": mine}, format="json")
    assert patched.status_code == 200 and WebhookSubscription.objects.get(pk=created["id"]).secret == mine


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["model.exploded"]}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": "*"}, "events"),
        ({"url": "http://127.0.0.1:9/x"}, "events"),
        ({"events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "whsec_short"}, "secret"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "hunter2hunter2hunter2hunter2hunter2"}, "secret"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "model_filter": "a b"}, "model_filter"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "colour": "red"}, "colour"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "consecutive_failures": 0}, "consecutive_failures"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    response = api.post("/webhooks", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert WebhookSubscription.objects.count() == 0
    assert not AuditEvent.objects.filter(object_type="webhook").exists()


def test_subscriptions_are_audited_and_deleted_with_their_deliveries(api, hook):
    created = subscribe(api, hook.url)
    services.create_model(name="audited", model_type="classification")
    assert api.patch(f"/webhooks/{created['id']}", {"events": ["model.deleted"]}, format="json").status_code == 200
    assert api.patch(f"/webhooks/{created['id']}", {"id": 5}, format="json").status_code == 400
    assert api.delete(f"/webhooks/{created['id']}").status_code == 204
    assert WebhookDelivery.objects.count() == 0
    actions = list(AuditEvent.objects.filter(object_type="webhook").order_by("id").values_list("action", flat=True))
    assert actions == ["create_webhook", "update_webhook", "delete_webhook"]
    assert "secret" not in json.dumps(list(AuditEvent.objects.filter(object_type="webhook").values("changes")))


# --- Server-side request forgery -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fe80::1]/x",
        "http://224.0.0.1/x",
        "http://0.0.0.0/x",
        "http://100.64.0.1/x",
    ],
)
def test_production_refuses_urls_that_reach_inside(persona, production, url):
    admin = persona("admin")
    response = admin.client.post("/webhooks", {"url": url, "events": ["*"]}, format="json")
    assert response.status_code == 400, response.json()
    assert "url" in response.json()["errors"]
    assert WebhookSubscription.objects.count() == 0


def test_production_allows_public_addresses_and_what_the_operator_allows(persona, production, settings):
    admin = persona("admin")
    public = admin.client.post("/webhooks", {"url": "http://93.184.215.14/x", "events": ["*"]}, format="json")
    assert public.status_code == 201, public.json()
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS = [__import__("ipaddress").ip_network("10.0.0.0/8")]
    assert (
        admin.client.post("/webhooks", {"url": "http://10.1.2.3/x", "events": ["*"]}, format="json").status_code == 201
    )
    assert (
        admin.client.post("/webhooks", {"url": "http://127.0.0.1/x", "events": ["*"]}, format="json").status_code == 400
    )
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = True
    assert (
        admin.client.post("/webhooks", {"url": "http://127.0.0.1/x", "events": ["*"]}, format="json").status_code == 201
    )


def test_a_host_that_does_not_resolve_yet_is_accepted_and_its_attempts_fail(persona, production):
    admin = persona("admin")
    created = admin.client.post("/webhooks", {"url": "https://hooks.invalid/x", "events": ["*"]}, format="json")
    assert created.status_code == 201, created.json()
    services.create_model(name="unheard", model_type="classification")
    assert run_worker() == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "cannot be resolved" in attempt.error


def test_a_host_that_resolves_inside_at_delivery_time_is_not_contacted(api, hook, settings, monkeypatch):
    """DNS rebinding: the name resolved to a public address when the subscription was saved, and to
    loopback when the worker sends. The worker checks again and connects to what it checked."""
    port = hook.url.split(":")[2].split("/")[0]
    answers = {"now": "93.184.215.14"}
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["now"], int(port)))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    production_mode(settings)
    webhooks.create_subscription(url=f"http://hooks.example.com:{port}/hooks", events=["*"])
    services.create_model(name="rebound", model_type="classification")
    answers["now"] = "127.0.0.1"
    assert run_worker() == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "resolves to 127.0.0.1" in attempt.error
    assert hook.requests == []
    # Allowed by the operator, the same delivery reaches the receiver (at the checked address).
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = True
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert run_worker() == 1
    assert len(hook.requests) == 1 and hook.requests[0].headers["host"] == f"hooks.example.com:{port}"


def test_local_mode_sends_to_loopback(api, hook):
    subscribe(api, hook.url)  # the other tests rely on it too; here it is the point
    services.create_model(name="local", model_type="classification")
    assert run_worker() == 1 and len(hook.requests) == 1


# --- Who may ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["viewer", "editor", "deployer"])
def test_only_admins_manage_subscriptions_in_production(persona, production, settings, role):
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = True
    settings.REGISTRY_PUBLIC_READ = True  # public reads never include webhooks
    subscription = webhooks.create_subscription(url="http://127.0.0.1:9/x", events=["*"])
    someone = persona(role)
    body = {"url": "http://127.0.0.1:9/y", "events": ["*"]}
    assert someone.client.get("/webhooks").status_code == 403
    assert someone.client.post("/webhooks", body, format="json").status_code == 403
    assert someone.client.get(f"/webhooks/{subscription.pk}/deliveries").status_code == 403
    anonymous = persona("anonymous")
    assert anonymous.client.get("/webhooks").status_code == 401
    assert anonymous.client.get(f"/webhooks/{subscription.pk}").status_code == 401
    admin = persona("admin")
    assert admin.client.get("/webhooks").status_code == 200
    assert admin.client.post("/webhooks", body, format="json").status_code == 201
    assert admin.client.get(f"/webhooks/{subscription.pk}/deliveries").status_code == 200


def test_subscription_validation_is_the_services_too():
    with pytest.raises(webhooks.InvalidInput) as refused:
        webhooks.create_subscription(url="http://127.0.0.1:9/x", events=["nope"])
    assert "events" in refused.value.errors
    with pytest.raises(webhooks.InvalidInput) as refused:
        webhooks.update_subscription(
            subscription=webhooks.create_subscription(url="http://127.0.0.1:9/x", events=["*"]),
            changes={"consecutive_failures": 0},
        )
    assert "consecutive_failures" in refused.value.errors


def test_deploy_through_the_api_is_an_event(api, hook, make_version):
    subscription = subscribe(api, hook.url, events=["deployment.created"])
    version = make_version(services.create_model(name="served", model_type="classification"), "v1")
    assert deploy(api, "served", version.version, "staging").status_code == 201
    run_worker()
    [event] = received(hook, subscription["secret"])
    assert event["data"]["object"]["model_name"] == "served" and event["data"]["via"] == "api"


def test_a_file_attached_later_that_makes_the_default_is_two_events(api, hook):
    subscribe(api, hook.url, events=["version.updated", "version.default_changed"])
    model = services.create_model(name="late", model_type="classification")
    services.register_version(model=model, version="v1", format="onnx")
    response = api.put("/models/late/versions/v1/file", {"file": upload(b"bytes")}, format="multipart")
    assert response.status_code in (200, 201), response.json()
    assert list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True)) == [
        "version.updated",
        "version.default_changed",
    ]


def test_an_experiments_life_is_events(api, hook, make_version):
    from deployments_app import experiments

    subscription = subscribe(api, hook.url)
    model = services.create_model(name="ranker", model_type="classification")
    make_version(model, "v1", b"one")
    make_version(model, "v2", b"two")
    experiment = experiments.create_experiment(
        model=model,
        target="staging",
        name="ab",
        variants=[experiments.VariantSpec("v1", 9000, is_control=True), experiments.VariantSpec("v2", 1000)],
        acting_user=Operator(),
    )
    experiments.start_experiment(experiment=experiment, acting_user=Operator())
    control, treatment = (variant.name for variant in experiments.get_experiment(experiment.pk).variants.order_by("id"))
    experiments.set_weights(experiment=experiment, weights={control: 8000, treatment: 2000})
    experiments.conclude_experiment(experiment=experiment, winner=treatment, acting_user=Operator())

    run_worker()
    events = [e for e in received(hook, subscription["secret"]) if e["type"].startswith("experiment.")]
    assert [e["type"] for e in events] == [
        "experiment.created",
        "experiment.started",
        "experiment.weights_changed",
        "experiment.concluded",
    ]
    assert events[0]["data"]["object"]["name"] == "ab" and events[0]["data"]["model"] == "ranker"
    assert events[-1]["data"]["object"]["state"] == "concluded"
    assert events[-1]["data"]["changes"]["version"] == "v2"
