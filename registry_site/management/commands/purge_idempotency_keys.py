"""manage.py purge_idempotency_keys [--dry-run]"""

from django.utils import timezone

from registry_site import idempotency
from registry_site.commands import RegistryCommand
from registry_site.models import IdempotencyKey


class Command(RegistryCommand):
    help = (
        "Delete the recorded answers to Idempotency-Key requests whose time (REGISTRY_IDEMPOTENCY_KEY_HOURS) "
        "is up. Expired answers are never replayed; this only frees their space: run it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count them, delete nothing")

    def handle(self, *args, **options):
        now = timezone.now()
        if options["dry_run"]:
            count = IdempotencyKey.objects.filter(expires_at__lte=now).count()
            self.stdout.write(f"{count} expired idempotency keys would be deleted (dry run).")
            return
        count = idempotency.purge_expired(now=now)
        self.stdout.write(f"Deleted {count} expired idempotency keys.")
