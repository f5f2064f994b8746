"""manage.py compare MODEL V1 V2 [V3 ...] | compare MODEL_A:V1 MODEL_B:V3 [...]
[--window 24h] [--source production] [--agg avg|min|max] [--json]

2 to 20 versions, the first the baseline; each a version string, `default`, `latest` or `@target`."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from rest_framework.exceptions import ValidationError

from models_app import comparison
from models_app.serializers import CompareQuerySerializer, CrossModelCompareQuerySerializer, VersionComparisonSerializer
from registry_site.commands import RegistryCommand


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class Command(RegistryCommand):
    help = "Compare 2 to 20 versions side by side, as GET /models/{m}/compare (or /compare across models) does."

    def add_arguments(self, parser):
        parser.add_argument("operands", nargs="+", help="MODEL then its versions, or MODEL:VERSION each")
        parser.add_argument("--window", help="compare the metric history of the last 30m, 24h, 7d, 2w...")
        parser.add_argument("--source", help="only the history's points from this source")
        parser.add_argument("--agg", help="how the history's points aggregate: avg (default), min, max")
        parser.add_argument("--json", action="store_true", help="print the API's JSON answer")

    def handle(self, *args, **options):
        operands = options["operands"]
        across = ":" in operands[0]
        refs = operands if across else operands[1:]
        if across and len(refs) != sum(":" in ref for ref in refs):
            raise CommandError("Across models, name every version as MODEL:VERSION.")
        query = {"versions": ",".join(refs)}
        query.update({name: options[name] for name in ("window", "source", "agg") if options[name] is not None})
        checked = (CrossModelCompareQuerySerializer if across else CompareQuerySerializer)(data=query)
        try:
            checked.is_valid(raise_exception=True)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in exc.detail.items())
            ) from None
        given = checked.validated_data
        window = None
        if {"window", "source", "agg"} & set(given):
            window = comparison.Window(given.get("window"), given.get("source"), given.get("agg", "avg"))
        entries = (
            comparison.resolve_across_models(given["versions"])
            if across
            else comparison.resolve(operands[0], given["versions"])
        )
        result = VersionComparisonSerializer(comparison.compare(entries, window=window)).data
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self._table(result)

    def _table(self, result) -> None:
        versions = result["versions"]
        basis = result["basis"]
        if basis["kind"] == "history":
            over = f"the last {basis['window']}" if basis["window"] else "all points"
            source = f" from {basis['source']}" if basis["source"] else ""
            self.stdout.write(f"Metric history ({basis['agg']} over {over}{source}), baseline {result['baseline']}")
        else:
            self.stdout.write(f"Registered metrics, baseline {result['baseline']}")
        rows = [["", *(v["asked"] for v in versions)]]
        rows.append(["version", *(f"{v['model']}:{v['version']}" for v in versions)])
        rows.append(["status", *(v["status"] for v in versions)])
        rows.append(["format", *(f"{v['format']} ({v['format_check']})" for v in versions)])
        rows.append(["file", *("-" if v["sha256"] is None else f"{v['file_size']} B" for v in versions)])
        rows.append(["deployed to", *(",".join(v["deployed_to"]) or "-" for v in versions)])
        rows.append(["default", *("yes" if v["is_default"] else "" for v in versions)])
        for metric in result["metrics"]:
            arrow = "↑" if metric["direction"] == "higher" else "↓"
            cells = []
            for version in versions:
                value = metric["values"][version["asked"]]
                cells.append(_number(value) + (" *" if version["asked"] in metric["best"] else ""))
            rows.append([f"{metric['name']} {arrow}", *cells])
        for compat in result["compatibility"]:
            rows.append([f"drop-in for baseline: {compat['version']}", "yes" if compat["drop_in"] else "no"])
        widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())
        self.stdout.write("* the best value of the metric (↑ higher is better, ↓ lower)")
