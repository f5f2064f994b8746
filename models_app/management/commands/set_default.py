"""manage.py set_default MODEL VERSION"""
from django.core.management.base import CommandError

from models_app import services
from models_app.models import ModelVersion
from registry_site.commands import RegistryCommand
from registry_site.errors import RegistryError


class Command(RegistryCommand):
    help = "Make a version its model's default version."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("version")

    def handle(self, *args, **options):
        try:
            version = ModelVersion.objects.get(model__name=options["model"], version=options["version"])
        except ModelVersion.DoesNotExist:
            raise CommandError(f"No version '{options['version']}' of model '{options['model']}'.") from None
        try:
            services.set_default_version(version=version)
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{options['model']}:{options['version']} is now the default version.")
