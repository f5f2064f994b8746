"""manage.py metrics record MODEL VERSION --name N --value X [--timestamp T] [--step S] [--source SRC]
| record MODEL VERSION --file points.json (or --file - for stdin: a JSON list, or {"points": [...]})
| list MODEL VERSION [--name N] [--source SRC] [--since T] [--until T] [--limit 100] [--json]
| summary MODEL VERSION [--bucket 1h|1d] [--agg avg|min|max|last|count] [--name N] [--source SRC]
  [--since T] [--until T] [--json]"""

from __future__ import annotations

import json
import sys

from django.core.management.base import CommandError

from models_app import metric_history, selectors
from models_app.filters import MetricPointFilter, MetricSummaryFilter
from models_app.serializers import MetricPointSerializer, MetricSummarySerializer
from registry_site.commands import RegistryCommand

FILTERS = ("name", "source", "since", "until")
POINT_OPTIONS = ("value", "timestamp", "step")


class Command(RegistryCommand):
    help = "Record a version's metric points (one, or a batch from a JSON file), list them, or summarize them."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["record", "list", "summary"])
        parser.add_argument("model", help="the model's name")
        self.add_model_version_argument(parser)
        parser.add_argument("--name", help="record: the metric; list, summary: only this metric's points")
        parser.add_argument("--value", type=float, help="record: the value (a finite number)")
        parser.add_argument("--timestamp", help="record: ISO 8601 (default now; without an offset, UTC)")
        parser.add_argument("--step", type=int, help="record: the training step or epoch")
        parser.add_argument("--source", help="record: where it came from (default eval); list, summary: only it")
        parser.add_argument("--file", help="record: a batch, as POST .../metrics takes it; - reads stdin")
        parser.add_argument("--since", help="list, summary: points at or after this time")
        parser.add_argument("--until", help="list, summary: points before this time")
        parser.add_argument("--limit", type=int, default=100, help="list: the newest N points (default 100)")
        parser.add_argument("--bucket", help="summary: 1h or 1d (default 1d, UTC)")
        parser.add_argument("--agg", help="summary: avg (default), min, max, last or count")
        parser.add_argument("--json", action="store_true", help="list, summary: print what the API answers")

    def handle(self, *args, **options):
        action = options["action"]
        version = selectors.get_version(options["model"], self.model_version(options))
        if action == "record":
            self._record(version, options)
            return
        if options["file"] is not None or any(options[o] is not None for o in POINT_OPTIONS):
            raise CommandError(f"metrics {action} takes no --file, --value, --timestamp or --step.")
        given = {name: options[name] for name in FILTERS if options[name] is not None}
        if action == "list":
            if options["bucket"] or options["agg"]:
                raise CommandError("--bucket and --agg are summary's.")
            if options["limit"] < 1:
                raise CommandError("--limit: at least 1.")
            points = self.filterset(MetricPointFilter, given, metric_history.points_of(version)).qs
            found = list(points.order_by("-timestamp", "-id")[: options["limit"]])
            if options["json"]:
                self.stdout.write(json.dumps(MetricPointSerializer(found, many=True).data, indent=2))
            for point in [] if options["json"] else found:
                step = "" if point.step is None else point.step
                self.stdout.write(f"{point.timestamp.isoformat()}\t{point.name}\t{point.source}\t{point.value}\t{step}")
            return
        for name in ("bucket", "agg"):
            if options[name] is not None:
                given[name] = options[name]
        checked = self.filterset(MetricSummaryFilter, given, metric_history.points_of(version)).form.cleaned_data
        data = metric_history.summary_of(version=version, filters=checked)
        if options["json"]:
            self.stdout.write(json.dumps(MetricSummarySerializer(data).data, indent=2))
            return
        for line in data["series"]:
            for bucket_row in line["buckets"]:
                self.stdout.write(
                    f"{bucket_row['start'].isoformat()}\t{line['name']}\t{line['source']}\t{data['agg']}={bucket_row['value']}"
                    f"\tcount={bucket_row['count']}"
                )

    def _record(self, version, options) -> None:
        for name in ("since", "until", "bucket", "agg", "json"):
            if options[name]:
                raise CommandError(f"metrics record takes no --{name}.")
        if options["file"] is not None:
            if options["name"] is not None or any(options[o] is not None for o in (*POINT_OPTIONS, "source")):
                raise CommandError("Give a batch with --file, or one point with --name and --value, not both.")
            try:
                with open(options["file"]) if options["file"] != "-" else sys.stdin as stream:
                    body = json.load(stream)
            except OSError as exc:
                raise CommandError(f"--file: cannot read {options['file']}: {exc.strerror}.") from None
            except ValueError as exc:
                raise CommandError(f"--file: not JSON ({exc}).") from None
            points = metric_history.points_from_body(body)
            batch = not (isinstance(body, dict) and "points" not in body)
        else:
            if options["name"] is None or options["value"] is None:
                raise CommandError("Give --name and --value (one point), or --file (a batch).")
            point = {"name": options["name"], "value": options["value"]}
            point.update({o: options[o] for o in ("timestamp", "step", "source") if options[o] is not None})
            points, batch = [point], False
        recorded = metric_history.record_points(version=version, points=points, batch=batch)
        self.stdout.write(
            f"Recorded {recorded} point{'s' if recorded != 1 else ''} for {version.model.name}:{version.version}."
        )
