"""manage.py deploy MODEL VERSION TARGET [--by NAME]"""

import getpass

from deployments_app import services
from models_app import selectors
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Deploy a model version to a target, superseding what was active there."

    def add_arguments(self, parser):
        parser.add_argument("model")
        self.add_model_version_argument(parser)
        parser.add_argument("target")
        parser.add_argument("--by", default=None, help="who deploys (default: the shell user)")

    def handle(self, *args, **options):
        version = selectors.get_version(options["model"], self.model_version(options))
        result = services.deploy_version(
            version=version,
            target=options["target"],
            acting_user=self.operator,
            deployed_by=options["by"] or getpass.getuser(),
        )
        what = "Deployed" if result.created else "Already active:"
        self.stdout.write(
            f"{what} {options['model']}:{version.version} on {result.deployment.deployment_target_id} "
            f"(deployment {result.deployment.pk})"
        )
