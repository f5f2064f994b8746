"""manage.py gc_artifacts [--dry-run] [--grace-hours N]"""

from datetime import timedelta

from django.core.management.base import CommandError

from models_app.maintenance import collect_garbage
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = (
        "Remove stored files that no version references, stale temporary uploads and (on S3) abandoned "
        "multipart uploads, once they are older than the grace period."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=24.0,
            help="leave anything younger than this alone: uploads in flight (default 24)",
        )

    def handle(self, *args, **options):
        if options["grace_hours"] < 0:
            raise CommandError("--grace-hours cannot be negative.")
        report = collect_garbage(
            grace=timedelta(hours=options["grace_hours"]),
            dry_run=options["dry_run"],
            progress=self.progress("unreferenced files"),
        )
        verb = "Would remove" if options["dry_run"] else "Removed"
        for sha256 in report.artifacts:
            self.stdout.write(f"{verb} unreferenced file {sha256}")
        for key in report.orphans:
            self.stdout.write(f"{verb} orphaned file {key}")
        for name in report.staged:
            self.stdout.write(f"{verb} stale temporary upload {name}")
        for upload in report.multipart:
            self.stdout.write(f"{verb} abandoned multipart upload {upload}")
        for problem in report.errors:
            self.stdout.write(f"FAILED    {problem}")
        summary = (
            f"{verb} {len(report.artifacts) + len(report.orphans)} files, {len(report.staged)} temporary "
            f"uploads, {len(report.multipart)} multipart uploads: {report.bytes_freed} bytes."
        )
        if report.errors:
            raise CommandError(f"{summary} {len(report.errors)} could not be removed (left in place).")
        self.stdout.write(summary)
