"""manage.py alerts [list] [--state firing|resolved] [--model M] [--version V] [--severity S] [--target T]
[--acknowledged true|false] [--json] | acknowledge ID"""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from deployments_app import alerts
from deployments_app.filters import AlertFilter
from deployments_app.models import Alert
from deployments_app.serializers import AlertSerializer
from registry_site.commands import RegistryCommand

FILTERS = ["state", "model", "version", "severity", "target", "acknowledged"]
SHOWN = 200  # the newest; narrow the list with the filters


class Command(RegistryCommand):
    help = "List alerts, newest first, with the API's filters, or acknowledge one (the same service as the API)."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", default="list", choices=["list", "acknowledge"])
        parser.add_argument("alert", nargs="?", help="acknowledge: the alert's id")
        for name in FILTERS:
            parser.add_argument(f"--{name}", help=f"list: only alerts with this {name} (as GET /alerts?{name}=)")
        parser.add_argument("--json", action="store_true", help="print what the API answers")

    def handle(self, *args, **options):
        given = {name: options[name] for name in FILTERS if options[name] is not None}
        if options["action"] == "acknowledge":
            if given or not (options["alert"] or "").isdigit():
                raise CommandError("Give the alert's id, and no filter: alerts acknowledge ID.")
            alert = alerts.acknowledge_alert(alert=alerts.get_alert(int(options["alert"])), acting_user=self.operator)
            self._show([alerts.get_alert(alert.pk)], as_json=options["json"], one=True)
            return
        if options["alert"] is not None:
            raise CommandError("alerts list takes no id (filter with --state, --model, ...).")
        filtered = self.filterset(AlertFilter, given, alerts.alerts()).qs
        self._show(list(filtered.order_by("-started_at", "-id")[:SHOWN]), as_json=options["json"])

    def _show(self, found: list[Alert], *, as_json: bool, one: bool = False) -> None:
        if as_json:
            data = AlertSerializer(found, many=True).data
            self.stdout.write(json.dumps(data[0] if one else data, indent=2))
            return
        for alert in found:
            seen = f"acknowledged by {alert.acknowledged_by}" if alert.acknowledged_at else "not acknowledged"
            where = f" on {alert.rule.target.name}" if alert.rule.target_id else ""
            self.stdout.write(
                f"{alert.pk}\t{alert.state}\t{alert.rule.severity}\t{alert.rule.model.name}:{alert.version.version}"
                f"{where}\t{alert.rule.name}\t{alert.started_at.isoformat()}\t{seen}\t{alert.reason}"
            )
