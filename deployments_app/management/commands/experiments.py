"""manage.py experiments [list [MODEL] [--target T]]
| create MODEL TARGET --name NAME --variant VERSION=WEIGHT[,control] ... [--metric M] [--mean] [--lower-is-better]
| start|pause|resume|stop|results ID | weights ID NAME=WEIGHT ... | conclude ID --winner NAME [--make-default]"""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from deployments_app import experiments, selectors
from deployments_app.models import MetricKind
from models_app import selectors as model_selectors
from registry_site.commands import RegistryCommand

ACTIONS = ["list", "create", "start", "pause", "resume", "stop", "weights", "results", "conclude"]
MOVES = {
    "pause": experiments.pause_experiment,
    "resume": experiments.resume_experiment,
    "stop": experiments.stop_experiment,
}


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"{what} {item!r}: write it as NAME=WEIGHT (basis points, 10000 = all).")
        pairs.append((name, value))
    return pairs


def _weight(text: str, item: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"{item!r}: the weight must be a whole number of basis points.") from None


class Command(RegistryCommand):
    help = "List, create, start, pause, resume, stop, ramp and conclude A/B tests (the same services as the API)."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", default="list", choices=ACTIONS)
        parser.add_argument("operands", nargs="*", help="MODEL TARGET (create), ID (others), NAME=WEIGHT (weights)")
        parser.add_argument("--target", help="list: only this target's")
        parser.add_argument("--name", help="create: the experiment's name")
        parser.add_argument(
            "--variant",
            action="append",
            default=[],
            help="create: VERSION=WEIGHT, or VERSION=WEIGHT,control for the control (repeat per variant)",
        )
        parser.add_argument("--metric", default="conversion", help="create: the metric's name")
        parser.add_argument("--mean", action="store_true", help="create: a mean metric (default: a rate)")
        parser.add_argument("--lower-is-better", action="store_true", help="create: e.g. latency")
        parser.add_argument("--min-samples", type=int, default=100, help="create")
        parser.add_argument("--winner", help="conclude: the winning variant's name")
        parser.add_argument("--make-default", action="store_true", help="conclude: make the winner the default")

    def handle(self, *args, **options):
        action, rest = options["action"], options["operands"]
        if action == "list":
            self._list(rest, options["target"])
        elif action == "create":
            self._create(rest, options)
        else:
            if len(rest) < 1 or not rest[0].isdigit():
                raise CommandError(f"Give the experiment's id: experiments {action} ID.")
            experiment = experiments.get_experiment(int(rest[0]))
            extra = rest[1:]
            if extra and action != "weights":
                raise CommandError(f"experiments {action} takes only the id ({' '.join(extra)} given).")
            if action == "start":
                experiment = experiments.start_experiment(experiment=experiment, acting_user=self.operator)
            elif action in MOVES:
                experiment = MOVES[action](experiment=experiment)
            elif action == "weights":
                if not extra:
                    raise CommandError("Give the new weights: experiments weights ID NAME=WEIGHT ...")
                weights = {name: _weight(value, name) for name, value in _pairs(extra, "Weight")}
                experiment = experiments.set_weights(experiment=experiment, weights=weights)
            elif action == "results":
                self.stdout.write(json.dumps(experiments.results(experiment), indent=2))
                return
            else:
                if not options["winner"]:
                    raise CommandError("Give the winner: experiments conclude ID --winner VARIANT.")
                experiment = experiments.conclude_experiment(
                    experiment=experiment,
                    winner=options["winner"],
                    make_default=options["make_default"],
                    acting_user=self.operator,
                    deployed_by=self.operator.name,
                )
            self.stdout.write(self._line(experiments.get_experiment(experiment.pk)))

    def _line(self, experiment) -> str:
        split = ", ".join(
            f"{v.name}={v.version.version}:{v.weight}{'*' if v.is_control else ''}" for v in experiment.variants.all()
        )
        return f"{experiment.pk}\t{experiment.model.name}\t{experiment.target.name}\t{experiment.state}\t{experiment.name}\t{split}"

    def _list(self, rest: list[str], target: str | None) -> None:
        if len(rest) > 1:
            raise CommandError("experiments list takes at most a model's name.")
        found = experiments.experiments()
        if rest:
            found = found.filter(model=model_selectors.get_model(rest[0]))
        if target:
            found = found.filter(target=selectors.get_target_or_404(target))
        for experiment in found.order_by("-id")[:200]:
            self.stdout.write(self._line(experiment))

    def _create(self, rest: list[str], options) -> None:
        if len(rest) != 2 or not options["name"] or not options["variant"]:
            raise CommandError("experiments create MODEL TARGET --name NAME --variant VERSION=WEIGHT[,control] ...")
        specs = []
        for version, value in _pairs(options["variant"], "Variant"):
            weight, _, flag = value.partition(",")
            if flag not in ("", "control"):
                raise CommandError(f"Variant {version}={value}: only ',control' may follow the weight.")
            specs.append(experiments.VariantSpec(version, _weight(weight, version), is_control=flag == "control"))
        experiment = experiments.create_experiment(
            model=model_selectors.get_model(rest[0]),
            target=rest[1],
            name=options["name"],
            variants=specs,
            acting_user=self.operator,
            created_by=self.operator.name,
            metric=options["metric"],
            metric_kind=MetricKind.MEAN if options["mean"] else MetricKind.RATE,
            higher_is_better=not options["lower_is_better"],
            min_samples=options["min_samples"],
        )
        self.stdout.write(self._line(experiment))
