"""manage.py prune_metrics --older-than 90d [--keep-daily]"""

from models_app.metric_history import parse_duration, prune_points
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Delete metric history points older than a duration; with --keep-daily, keep each day of them as one "
        "point (its average, source '<source>.daily', step = how many points it averages)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, metavar="DURATION", help="such as 90d, 12h, 30m, 2w")
        parser.add_argument("--keep-daily", action="store_true", help="keep a daily average of what is deleted")

    def handle(self, *args, **options):
        report = prune_points(older_than=parse_duration(options["older_than"]), keep_daily=options["keep_daily"])
        self.stdout.write(f"Deleted {report.deleted} points; kept {report.kept_daily} daily points.")
