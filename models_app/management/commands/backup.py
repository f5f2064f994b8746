"""manage.py backup DEST"""

from models_app.backup import backup, destination
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Write a consistent snapshot of the registry (its rows, and its files by content address) to a folder "
        "or s3://bucket/prefix. Files already in DEST from an earlier backup are not copied again."
    )

    def add_arguments(self, parser):
        parser.add_argument("destination", metavar="DEST", help="a folder, or s3://bucket/prefix")

    def handle(self, *args, **options):
        report = backup(destination(options["destination"]), progress=self.stdout.write)
        rows = ", ".join(f"{n} {table}" for table, n in report.rows.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"snapshot {report.snapshot}: {rows}; {report.files} files, {report.copied} copied "
                f"({report.bytes_copied} bytes), {report.files - report.copied} already in the backup"
            )
        )
