"""The alert rules and alerts in the admin console: a rule made and changed through the same service as
the API (audited, a refused rule shown on its form), and the alerts' "Acknowledge" action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from deployments_app import alerts
from deployments_app.models import Alert, AlertRule, Target
from models_app import metric_history
from registry_site.models import AuditEvent
from registry_site.permissions import Operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, world):
    User.objects.create_superuser("root", "root@example.com", "pw")
    client.login(username="root", password="pw")
    metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.9}])
    return client


def form(world, **values) -> dict:
    return {
        "model": world.model.pk,
        "name": "floor",
        "target": Target.objects.get(name="staging").pk,
        "enabled": "on",
        "severity": "critical",
        "action": "none",
        "metric": "accuracy",
        "source": "",
        "aggregate": "avg",
        "window_points": "5",
        "window_minutes": "",
        "condition": "below",
        "threshold": "0.8",
        "baseline": "",
        "drop_by": "",
        "min_points": "1",
        **values,
    }


def test_a_rule_made_and_changed_in_the_admin_goes_through_the_service(console, world):
    response = console.post("/admin/deployments_app/alertrule/add/", form(world))
    assert response.status_code == 302, response.content.decode()[:3000]
    made = AlertRule.objects.get()
    assert (made.name, made.target.name, made.created_by) == ("floor", "staging", "root")
    assert AuditEvent.objects.get(action="create_alert_rule").via == "admin"
    changed = console.post(f"/admin/deployments_app/alertrule/{made.pk}/change/", form(world, threshold="0.7"))
    assert changed.status_code == 302
    assert AuditEvent.objects.get(action="update_alert_rule").changes["threshold"] == [0.8, 0.7]
    history = console.get(f"/admin/deployments_app/alertrule/{made.pk}/history/").content.decode()
    assert "create_alert_rule" in history and "update_alert_rule" in history
    refused = console.post("/admin/deployments_app/alertrule/add/", form(world, name="x", metric="auc"))
    assert refused.status_code == 200 and "No version of" in refused.content.decode()
    assert AlertRule.objects.count() == 1
    assert console.get("/admin/deployments_app/alertrule/").status_code == 200
    deleted = console.post(f"/admin/deployments_app/alertrule/{made.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not AlertRule.objects.exists()
    assert AuditEvent.objects.filter(action="delete_alert_rule").count() == 1


def test_acknowledge_from_the_alert_list(console, world, django_capture_on_commit_callbacks):
    alerts.create_rule(
        model=world.model,
        values={"name": "floor", "metric": "accuracy", "window_points": 5, "condition": "below", "threshold": 0.95},
        acting_user=Operator(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.5}])
    alert = Alert.objects.get()
    listed = console.get("/admin/deployments_app/alert/")
    assert listed.status_code == 200 and "floor" in listed.content.decode()
    assert console.get(f"/admin/deployments_app/alert/{alert.pk}/change/").status_code == 200
    response = console.post(
        "/admin/deployments_app/alert/", {"action": "acknowledge", "_selected_action": [alert.pk]}, follow=True
    )
    assert f"Alert {alert.pk} acknowledged." in response.content.decode()
    alert.refresh_from_db()
    assert alert.acknowledged_by == "root" and AuditEvent.objects.get(action="acknowledge_alert").via == "admin"
