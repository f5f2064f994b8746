"""The base of the registry's management commands: what they write is audited as the shell user's."""
from django.core.management.base import BaseCommand

from registry_site import audit


class RegistryCommand(BaseCommand):
    def execute(self, *args, **options):
        with audit.acting_from_command():
            return super().execute(*args, **options)
