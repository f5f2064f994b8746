"""manage.py set_default MODEL VERSION"""

from django.core.management.base import CommandError

from models_app import services
from registry_site.commands import RegistryCommand
from registry_site.errors import RegistryError


class Command(RegistryCommand):
    help = "Make a version its model's default version."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("version")

    def handle(self, *args, **options):
        version = self.find_version(options["model"], options["version"])
        try:
            services.set_default_version(version=version)
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{options['model']}:{options['version']} is now the default version.")
