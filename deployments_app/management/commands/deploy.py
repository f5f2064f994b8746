"""manage.py deploy MODEL VERSION TARGET [--by NAME]"""

import getpass

from django.core.management.base import CommandError

from deployments_app import services
from registry_site.commands import RegistryCommand
from registry_site.errors import RegistryError


class Command(RegistryCommand):
    help = "Deploy a model version to a target, superseding what was active there."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("version")
        parser.add_argument("target")
        parser.add_argument("--by", default=None, help="who deploys (default: the shell user)")

    def handle(self, *args, **options):
        version = self.find_version(options["model"], options["version"])
        try:
            result = services.deploy_version(
                version=version, target=options["target"], deployed_by=options["by"] or getpass.getuser()
            )
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        what = "Deployed" if result.created else "Already active:"
        self.stdout.write(
            f"{what} {options['model']}:{options['version']} on {options['target']} (deployment {result.deployment.pk})"
        )
