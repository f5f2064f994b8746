"""manage.py verify_artifacts [--model NAME] [--fast]"""

from django.core.management.base import CommandError

from models_app import selectors
from models_app.maintenance import verify_artifacts
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Re-hash every stored file against its row; report missing, corrupted and orphaned files."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only the files of this model's versions")
        parser.add_argument(
            "--fast",
            action="store_true",
            help="on S3, compare the checksums the store keeps with each object (a HEAD each) instead of "
            "reading every byte",
        )

    def handle(self, *args, **options):
        name = options["model"]
        if name:
            selectors.get_model(name)  # an unknown name is an error, not an empty report
        report = verify_artifacts(
            model_name=name,
            fast=options["fast"],
            progress=self.progress("files checked" if options["fast"] else "files read"),
        )
        for sha256 in report.missing:
            self.stdout.write(f"MISSING   {sha256}")
        for problem in report.corrupted:
            self.stdout.write(f"CORRUPTED {problem}")
        for key in report.orphaned:
            self.stdout.write(f"ORPHANED  {key} (no version references it; gc_artifacts removes it)")
        for problem in report.unreadable:
            self.stdout.write(f"UNREADABLE {problem}")
        for problem in report.unverified:
            self.stdout.write(f"UNVERIFIED {problem}")
        summary = (
            f"{report.checked} files checked, {report.bytes_read} bytes read: {len(report.missing)} missing, "
            f"{len(report.corrupted)} corrupted, {len(report.orphaned)} orphaned"
        )
        if report.unreadable:
            summary += f", {len(report.unreadable)} unreadable"
        if report.unverified:
            summary += f", {len(report.unverified)} unverified"
        if not report.ok:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
