"""The alert API (issue #9 §4): a model's rules under /models/{name}/alert-rules, the alerts under /alerts
and their acknowledgement; bad input is a 400 naming its field with nothing written; in production mode
the roles decide (reads for every role, rules and acknowledging for deployers)."""

from __future__ import annotations

import pytest

import tests.test_alerts
from deployments_app.models import Alert, AlertRule
from models_app import metric_history
from registry_site.models import AuditEvent
from tests.conftest import registry_state

pytestmark = pytest.mark.django_db

RULE = {**tests.test_alerts.RULE, "min_points": 2}


@pytest.fixture
def model(world):
    metric_history.record_points(version=world.v1, points=[{"name": "accuracy", "value": 0.9, "source": "production"}])
    return world.model


def rules_url(model, suffix: str = "") -> str:
    return f"/models/{model.name}/alert-rules{suffix}"


def firing_alert(api, model, version, django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/models/{model.name}/versions/{version.version}/metrics",
            {"points": [{"name": "accuracy", "value": 0.5, "source": "production"}] * 2},
            format="json",
        )
    assert response.status_code == 201, response.json()
    listed = api.get("/alerts", {"state": "firing", "model": model.name}).json()["results"]
    assert len(listed) == 1
    return listed[0]


def test_rules_crud(api, model):
    made = api.post(rules_url(model), {**RULE, "target": "Production", "severity": "critical"}, format="json")
    assert made.status_code == 201, made.json()
    body = made.json()
    assert body["target"] == "production" and body["model_name"] == "resnet" and body["firing"] == 0
    assert body["action"] == "none" and body["enabled"] is True and body["window_points"] is None
    assert made["Location"].endswith(rules_url(model, f"/{body['id']}"))
    assert api.get(rules_url(model)).json()["results"] == [body]
    assert api.get(rules_url(model, f"/{body['id']}")).json() == body
    changed = api.patch(rules_url(model, f"/{body['id']}"), {"threshold": 0.75, "target": None}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["threshold"], changed.json()["target"]) == (0.75, None)
    event = AuditEvent.objects.get(action="update_alert_rule")
    assert event.changes["threshold"] == [0.8, 0.75] and event.changes["target"] == ["production", None]
    assert api.delete(rules_url(model, f"/{body['id']}")).status_code == 204
    assert not AlertRule.objects.exists() and AuditEvent.objects.filter(action="delete_alert_rule").count() == 1
    assert api.get(rules_url(model, f"/{body['id']}")).status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({**RULE, "metric": "auc"}, "metric"),
        ({**RULE, "aggregate": "median"}, "aggregate"),
        ({**RULE, "window_minutes": -5}, "window_minutes"),
        ({**RULE, "window_points": 0, "window_minutes": None}, "window_points"),
        ({**RULE, "window_points": 10}, "window_points"),
        ({**RULE, "threshold": "high"}, "threshold"),
        ({**RULE, "threshold": None}, "threshold"),
        ({**RULE, "condition": "sideways"}, "condition"),
        ({**RULE, "action": "rollback"}, "target"),
        ({**RULE, "target": "nowhere"}, "target"),
        ({**RULE, "min_points": -1}, "min_points"),
        ({**RULE, "colour": "red"}, "colour"),
        ({key: value for key, value in RULE.items() if key != "name"}, "name"),
        ({**RULE, "condition": "drop", "threshold": None, "baseline": "default", "drop_by": -1}, "drop_by"),
    ],
)
def test_bad_rules_are_400_naming_the_field_and_write_nothing(api, model, storage_dir, body, field):
    before = registry_state(storage_dir)
    response = api.post(rules_url(model), body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert registry_state(storage_dir) == before and not AlertRule.objects.exists()


def test_unknown_model_rule_and_duplicate_name(api, model):
    assert api.get("/models/nothing/alert-rules").status_code == 404
    assert api.post("/models/nothing/alert-rules", RULE, format="json").status_code == 404
    assert api.get(rules_url(model, "/999")).status_code == 404
    assert api.post(rules_url(model), RULE, format="json").status_code == 201
    again = api.post(rules_url(model), RULE, format="json")
    assert again.status_code == 409 and "name" in again.json()["errors"]


def test_alerts_list_filter_and_acknowledge(api, world, model, django_capture_on_commit_callbacks):
    assert api.post(rules_url(model), RULE, format="json").status_code == 201
    alert = firing_alert(api, model, world.v2, django_capture_on_commit_callbacks)
    assert (alert["rule_name"], alert["version"], alert["state"], alert["severity"]) == (
        "accuracy floor",
        "v2",
        "firing",
        "warning",
    )
    assert api.get("/alerts", {"state": "resolved"}).json()["results"] == []
    assert api.get("/alerts", {"model": "spare"}).json()["results"] == []
    assert api.get("/alerts", {"acknowledged": "false"}).json()["results"] == [alert]
    assert api.get(f"/alerts/{alert['id']}").json() == alert
    for bad in ({"state": "burning"}, {"severity": "x"}, {"acknowledged": "maybe"}, {"colour": "red"}):
        response = api.get("/alerts", bad)
        assert response.status_code == 400 and set(bad) <= set(response.json()["errors"]), response.json()
    acknowledged = api.post(f"/alerts/{alert['id']}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.json()
    assert acknowledged.json()["acknowledged_by"] == "anonymous" and acknowledged.json()["state"] == "firing"
    assert api.post(f"/alerts/{alert['id']}/acknowledge").status_code == 409
    assert api.post("/alerts/999/acknowledge").status_code == 404
    assert api.get("/alerts", {"acknowledged": "true"}).json()["results"][0]["id"] == alert["id"]


def test_production_permissions(settings, persona, world, model, django_capture_on_commit_callbacks):
    admin = persona("admin")
    assert admin.client.post(rules_url(model), RULE, format="json").status_code == 201
    firing_alert(admin.client, model, world.v2, django_capture_on_commit_callbacks)
    settings.LOCAL_MODE = False
    settings.REGISTRY_PUBLIC_READ = False
    anonymous, viewer, editor, deployer = (persona(role) for role in ("anonymous", "viewer", "editor", "deployer"))
    alert = Alert.objects.get()
    assert anonymous.client.get("/alerts").status_code == 401
    assert anonymous.client.get(rules_url(model)).status_code == 401
    assert viewer.client.get("/alerts").status_code == 200
    assert viewer.client.get(rules_url(model)).status_code == 200
    other = {**RULE, "name": "second"}
    assert viewer.client.post(rules_url(model), other, format="json").status_code == 403
    assert editor.client.post(rules_url(model), other, format="json").status_code == 403
    assert editor.client.post(f"/alerts/{alert.pk}/acknowledge").status_code == 403
    made = deployer.client.post(
        rules_url(model), {**other, "target": "production", "action": "rollback"}, format="json"
    )
    assert made.status_code == 201, made.json()
    assert made.json()["created_by"] == "deployer-user"
    acknowledged = deployer.client.post(f"/alerts/{alert.pk}/acknowledge")
    assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged_by"] == "deployer-user"
