"""manage.py restore SRC [--snapshot NAME] [--replace]"""

from models_app.backup import destination, restore
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Restore a snapshot written by `backup` (the latest unless --snapshot names one) into an empty registry: "
        "files first, each checked by sha256, then every row in one transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", metavar="SRC", help="the backup's folder, or s3://bucket/prefix")
        parser.add_argument("--snapshot", help="which snapshot (a name under SRC/snapshots); default: the latest")
        parser.add_argument(
            "--replace", action="store_true", help="delete what this registry holds first (it refuses otherwise)"
        )

    def handle(self, *args, **options):
        report = restore(
            destination(options["source"]),
            snapshot=options["snapshot"],
            replace=options["replace"],
            progress=self.stdout.write,
        )
        rows = ", ".join(f"{n} {table}" for table, n in report.rows.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"restored snapshot {report.snapshot}: {rows}; {report.files} files, {report.copied} copied"
            )
        )
