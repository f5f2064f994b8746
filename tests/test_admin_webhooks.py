"""The admin's webhook pages: subscriptions made and changed through the same service as the API (the
secret shown once, the SSRF rule and the events' rule as form errors), the delivery log read-only, and
redelivery as an action."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from models_app import services
from registry_site import webhooks
from registry_site.models import AuditEvent, WebhookDelivery, WebhookSubscription
from tests.conftest import production_mode

pytestmark = pytest.mark.django_db


def url(name: str, *args) -> str:
    return reverse(f"admin:registry_site_{name}", args=args)


def flashed(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request)]


def test_add_a_subscription_shows_its_generated_secret_once(admin_client):
    response = admin_client.post(
        url("webhooksubscription_add"),
        {"url": "http://127.0.0.1:9/hooks", "events": ["model.created", "version.created"], "enabled": "on"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["model.created", "version.created"]
    assert subscription.secret.startswith("whsec_")
    assert any(subscription.secret in message for message in flashed(response))
    change_page = url("webhooksubscription_change", subscription.pk)
    assert subscription.secret in admin_client.get(change_page).content.decode()  # the message, once
    assert subscription.secret not in admin_client.get(change_page).content.decode()  # never again
    assert AuditEvent.objects.filter(action="create_webhook").count() == 1


def test_change_keeps_the_secret_when_left_blank(admin_client):
    subscription = webhooks.create_subscription(url="http://127.0.0.1:9/hooks", events=["*"])
    response = admin_client.post(
        url("webhooksubscription_change", subscription.pk),
        {"url": "http://127.0.0.1:9/other", "events": ["*"], "enabled": "on", "secret": ""},
    )
    assert response.status_code == 302
    changed = WebhookSubscription.objects.get()
    assert (changed.url, changed.secret) == ("http://127.0.0.1:9/other", subscription.secret)


@pytest.mark.parametrize(
    "form, field",
    [
        ({"url": "http://127.0.0.1:9/hooks", "events": ["model.exploded"]}, "events"),
        ({"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": "whsec_nope"}, "secret"),
        ({"url": "gopher://127.0.0.1:9/hooks", "events": ["*"]}, "url"),
    ],
)
def test_bad_input_is_a_form_error(admin_client, form, field):
    response = admin_client.post(url("webhooksubscription_add"), form)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert WebhookSubscription.objects.count() == 0


def test_production_refuses_an_inside_url_as_a_form_error(admin_client, settings):
    production_mode(settings)
    response = admin_client.post(url("webhooksubscription_add"), {"url": "http://10.0.0.1/x", "events": ["*"]})
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert WebhookSubscription.objects.count() == 0


def test_the_delivery_log_and_the_redeliver_action(admin_client):
    subscription = webhooks.create_subscription(url="http://127.0.0.1:9/hooks", events=["*"])
    services.create_model(name="logged", model_type="classification")
    delivery = WebhookDelivery.objects.get()
    webhooks.deliver_due()  # nothing listens on port 9: a failed attempt in the log
    changelist = admin_client.get(url("webhookdelivery_changelist"), {"status": "pending"})
    assert changelist.status_code == 200 and delivery.message_id in changelist.content.decode()
    page = admin_client.get(url("webhookdelivery_change", delivery.pk)).content.decode()
    assert "no answer" in page and "NewConnectionError" in page
    assert admin_client.get(url("webhooksubscription_change", subscription.pk)).status_code == 200

    response = admin_client.post(
        url("webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk], "index": 0},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert AuditEvent.objects.filter(action="redeliver_webhook").count() == 1
    assert not admin_client.get(url("webhookdelivery_add")).status_code == 200  # no adding by hand
