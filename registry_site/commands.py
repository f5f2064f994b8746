"""The base of the registry's management commands: what they write is audited as the shell user's, and
the lookups and progress lines they share are here."""

from django.core.management.base import BaseCommand, CommandError

from models_app.models import ModelVersion
from registry_site import audit


class RegistryCommand(BaseCommand):
    def execute(self, *args, **options):
        with audit.acting_from_command():
            return super().execute(*args, **options)

    def find_version(self, model: str, version: str) -> ModelVersion:
        try:
            return ModelVersion.objects.select_related("model").get(model__name=model, version=version)
        except ModelVersion.DoesNotExist:
            raise CommandError(f"No version '{version}' of model '{model}'.") from None

    def progress(self, what: str):
        """A progress callback (done, total, bytes) that prints every 100 items and at the end."""

        def report(done: int, total: int, nbytes: int) -> None:
            if done == total or done % 100 == 0:
                self.stdout.write(f"  {done}/{total} {what}, {nbytes} bytes")

        return report
