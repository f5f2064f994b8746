"""manage.py migrate_storage --to DEST"""

from django.core.management.base import CommandError

from models_app.backup import artifact_destination, migrate_storage
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Copy every stored file to another storage (s3://bucket/prefix or a folder), under the same keys, and "
        "verify each copy by sha256. Changes no setting: switch the storage settings once it reports success. "
        "Safe to interrupt and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, metavar="DEST", help="s3://bucket/prefix, or a folder")

    def handle(self, *args, **options):
        report = migrate_storage(artifact_destination(options["to"]), progress=self.stdout.write)
        summary = (
            f"{report.files} files: {report.copied} copied ({report.bytes_copied} bytes), {report.already} already "
            f"there, {len(report.failed)} failed; every copy was read back and checked by sha256"
        )
        if report.failed:
            raise CommandError(f"{summary}. Nothing is switched: fix the failures and run it again.")
        self.stdout.write(self.style.SUCCESS(f"{summary}. You can now switch the storage settings."))
