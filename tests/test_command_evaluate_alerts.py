"""manage.py evaluate_alerts: every enabled rule now, for the versions it watches: what raises "no data"
alerts (nothing arrives to evaluate them) and, from cron, what keeps the alerts' state current."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from deployments_app import alerts
from deployments_app.models import Alert
from deployments_app.services import deploy_version
from models_app import metric_history
from registry_site.models import AuditEvent
from registry_site.permissions import Operator

pytestmark = pytest.mark.django_db


def run() -> str:
    out = StringIO()
    call_command("evaluate_alerts", stdout=out)
    return out.getvalue()


def test_no_data_fires_once_and_an_arriving_point_resolves_it(world, django_capture_on_commit_callbacks):
    deploy_version(version=world.v2, target="production", acting_user=Operator())
    metric_history.record_points(version=world.v1, points=[{"name": "latency_ms", "value": 12.0, "source": "prod"}])
    alerts.create_rule(
        model=world.model,
        values={
            "name": "silence",
            "metric": "latency_ms",
            "source": "prod",
            "window_minutes": 10,
            "condition": "no_data",
            "target": "production",
            "severity": "critical",
        },
        acting_user=Operator(),
    )
    assert run() == "Evaluated 1 rule and version pairs: 1 alerts fired, 0 resolved.\n"
    alert = Alert.objects.get()
    assert (alert.version, alert.state, alert.value) == (world.v2, "firing", None)
    assert alert.reason == "no latency_ms point from prod in the last 10 min"
    assert run() == "Evaluated 1 rule and version pairs: 0 alerts fired, 0 resolved.\n"
    event = AuditEvent.objects.get(action="fire_alert")
    assert event.actor.endswith("(shell)") and event.via == "command"
    with django_capture_on_commit_callbacks(execute=True):
        metric_history.record_points(version=world.v2, points=[{"name": "latency_ms", "value": 9.0, "source": "prod"}])
    alert.refresh_from_db()
    assert alert.state == "resolved" and AuditEvent.objects.filter(action="resolve_alert").count() == 1


def test_nothing_to_evaluate(db):
    assert run() == "Evaluated 0 rule and version pairs: 0 alerts fired, 0 resolved.\n"
