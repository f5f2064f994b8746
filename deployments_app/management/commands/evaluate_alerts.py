"""manage.py evaluate_alerts: evaluate every enabled alert rule now (deployments_app.alerts.evaluate_all).
Rules are also evaluated when points arrive; this is what raises "no data" alerts and resolves alerts
whose window emptied of breaches, so run it from cron (every minute or few)."""

from __future__ import annotations

from deployments_app import alerts
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Evaluate every enabled alert rule for the versions it watches (for cron and no-data rules)."

    def handle(self, *args, **options) -> None:
        report = alerts.evaluate_all()
        self.stdout.write(
            f"Evaluated {report.evaluated} rule and version pairs: {report.fired} alerts fired, "
            f"{report.resolved} resolved."
        )
