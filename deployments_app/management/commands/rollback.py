"""manage.py rollback DEPLOYMENT_ID [--reason TEXT]"""

from deployments_app import selectors, services
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Roll back an active deployment, restoring the previous one on its target."

    def add_arguments(self, parser):
        parser.add_argument("deployment_id", type=int)
        parser.add_argument("--reason", default="")

    def handle(self, *args, **options):
        deployment = selectors.get_deployment(options["deployment_id"])
        result = services.rollback_deployment(deployment=deployment, reason=options["reason"])
        target = result.rolled_back.deployment_target
        if result.restored is None:
            self.stdout.write(f"Rolled back deployment {deployment.pk}; '{target}' is now empty.")
        else:
            self.stdout.write(
                f"Rolled back deployment {deployment.pk}; version '{result.restored.model_version.version}' "
                f"is active on '{target}' again (deployment {result.restored.pk})."
            )
