"""manage.py alert_rules [list [MODEL]] [--json]
| create MODEL --name NAME --metric M --condition above|below|drop|no_data [--threshold X] [--source S]
  [--target T] [--aggregate avg|min|max|last|count] [--window-points N | --window-minutes T] [--baseline B]
  [--drop-by X] [--drop-relative] [--min-points N] [--severity S] [--action none|rollback|pause_experiment]
| update MODEL ID [any of create's options, --enabled/--disabled, --drop-absolute] | delete MODEL ID"""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from deployments_app import alerts
from deployments_app.models import AlertRule
from deployments_app.serializers import AlertRuleSerializer
from models_app import selectors as model_selectors
from registry_site.commands import RegistryCommand

ACTIONS = ["list", "create", "update", "delete"]
# The rule's settings as options: (option, field, type); the rules between them are deployments_app.alerts'.
SETTINGS = [
    ("--name", "name", str),
    ("--metric", "metric", str),
    ("--source", "source", str),
    ("--target", "target", str),
    ("--aggregate", "aggregate", str),
    ("--window-points", "window_points", int),
    ("--window-minutes", "window_minutes", int),
    ("--condition", "condition", str),
    ("--threshold", "threshold", float),
    ("--baseline", "baseline", str),
    ("--drop-by", "drop_by", float),
    ("--min-points", "min_points", int),
    ("--severity", "severity", str),
    ("--action", "action", str),
]


class Command(RegistryCommand):
    help = "List, create, change or delete a model's performance alert rules (the same service as the API)."

    def add_arguments(self, parser):
        parser.add_argument(
            "action_name", nargs="?", default="list", choices=ACTIONS, metavar="{list,create,update,delete}"
        )
        parser.add_argument("operands", nargs="*", help="MODEL (list, create), MODEL ID (update, delete)")
        for option, field, kind in SETTINGS:
            parser.add_argument(option, dest=field, type=kind, help=f"the rule's {field} (create, update)")
        parser.add_argument("--drop-relative", dest="drop_relative", action="store_true", default=None)
        parser.add_argument("--drop-absolute", dest="drop_relative", action="store_false", default=None)
        parser.add_argument("--enabled", dest="enabled", action="store_true", default=None, help="update")
        parser.add_argument("--disabled", dest="enabled", action="store_false", default=None, help="update")
        parser.add_argument("--json", action="store_true", help="print the rules as the API answers them")

    def handle(self, *args, **options):
        action, rest = options["action_name"], options["operands"]
        values = {field: options[field] for field in alerts.RULE_FIELDS if options.get(field) is not None}
        if action == "list":
            if len(rest) > 1 or values:
                raise CommandError("alert_rules list takes at most a model's name, and no rule settings.")
            found = alerts.alert_rules_listed().order_by("model__name", "id")
            if rest:
                found = found.filter(model=model_selectors.get_model(rest[0]))
            self._show(list(found), as_json=options["json"])
        elif action == "create":
            if len(rest) != 1:
                raise CommandError("alert_rules create MODEL --name NAME --metric METRIC --condition CONDITION ...")
            missing = [f"--{field}" for field in ("name", "metric", "condition") if field not in values]
            if missing:
                raise CommandError(f"A new rule needs {', '.join(missing)}.")
            rule = alerts.create_rule(
                model=model_selectors.get_model(rest[0]),
                values=values,
                acting_user=self.operator,
                created_by=self.operator.name,
            )
            self._done("Created", rule, as_json=options["json"])
        else:
            rule = self._rule(rest, action)
            if action == "delete":
                if values:
                    raise CommandError("alert_rules delete takes no rule settings.")
                alerts.delete_rule(rule=rule)
                self.stdout.write(f"Deleted alert rule {rule.pk} ({rule.name}) of {rule.model.name}.")
            else:
                if not values:
                    raise CommandError("Nothing to change: give at least one of the rule's settings.")
                rule = alerts.update_rule(rule=rule, changes=values, acting_user=self.operator)
                self._done("Updated", rule, as_json=options["json"])

    def _rule(self, rest: list[str], action: str) -> AlertRule:
        if len(rest) != 2 or not rest[1].isdigit():
            raise CommandError(f"Give the model and the rule's id: alert_rules {action} MODEL ID.")
        model = model_selectors.get_model(rest[0])
        found = alerts.alert_rules_listed().filter(model=model, pk=int(rest[1])).first()
        if found is None:
            raise CommandError(f"Model '{model.name}' has no alert rule {rest[1]}.")
        return found

    def _done(self, what: str, rule: AlertRule, *, as_json: bool) -> None:
        listed = alerts.alert_rules_listed().get(pk=rule.pk)
        if as_json:
            self.stdout.write(json.dumps(AlertRuleSerializer(listed).data, indent=2))
        else:
            self.stdout.write(f"{what} alert rule {listed.pk}: {self._line(listed)}")

    def _show(self, rules: list[AlertRule], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(AlertRuleSerializer(rules, many=True).data, indent=2))
            return
        for rule in rules:
            self.stdout.write(f"{rule.pk}\t{self._line(rule)}")

    @staticmethod
    def _line(rule: AlertRule) -> str:
        window = f"last {rule.window_points} points" if rule.window_points else f"last {rule.window_minutes} min"
        if rule.condition in ("above", "below"):
            test = f"{rule.condition} {rule.threshold}"
        elif rule.condition == "drop":
            test = f"drop by {rule.drop_by}{' (relative)' if rule.drop_relative else ''} vs {rule.baseline}"
        else:
            test = rule.condition
        where = f" on {rule.target.name}" if rule.target_id else ""
        state = "" if rule.enabled else " [disabled]"
        firing = getattr(rule, "firing_count", 0)
        return (
            f"{rule.model.name}\t{rule.name}\t{rule.aggregate} {rule.metric}"
            f"{'/' + rule.source if rule.source else ''} over {window} {test}{where}\t"
            f"{rule.severity}\taction={rule.action}\tfiring={firing}{state}"
        )
