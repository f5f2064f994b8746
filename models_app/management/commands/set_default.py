"""manage.py set_default MODEL VERSION"""

from models_app import selectors, services
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Make a version its model's default version."

    def add_arguments(self, parser):
        parser.add_argument("model")
        self.add_model_version_argument(parser)

    def handle(self, *args, **options):
        version = selectors.get_version(options["model"], self.model_version(options))
        services.set_default_version(version=version)
        self.stdout.write(f"{options['model']}:{version.version} is now the default version.")
