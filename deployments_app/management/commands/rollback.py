"""manage.py rollback DEPLOYMENT_ID [--reason TEXT]"""

from django.core.management.base import CommandError

from deployments_app import services
from deployments_app.models import Deployment
from registry_site.commands import RegistryCommand
from registry_site.errors import RegistryError


class Command(RegistryCommand):
    help = "Roll back an active deployment, restoring the previous one on its target."

    def add_arguments(self, parser):
        parser.add_argument("deployment_id", type=int)
        parser.add_argument("--reason", default="")

    def handle(self, *args, **options):
        try:
            deployment = Deployment.objects.get(pk=options["deployment_id"])
        except Deployment.DoesNotExist:
            raise CommandError(f"No deployment {options['deployment_id']}.") from None
        try:
            result = services.rollback_deployment(deployment=deployment, reason=options["reason"])
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        target = result.rolled_back.deployment_target
        if result.restored is None:
            self.stdout.write(f"Rolled back deployment {deployment.pk}; '{target}' is now empty.")
        else:
            self.stdout.write(
                f"Rolled back deployment {deployment.pk}; version '{result.restored.model_version.version}' "
                f"is active on '{target}' again (deployment {result.restored.pk})."
            )
