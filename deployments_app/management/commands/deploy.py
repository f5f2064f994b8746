"""manage.py deploy MODEL VERSION TARGET [--by NAME] [--dry-run]

The target's promotion policies apply here as everywhere (deploy_version evaluates them): a refusal
names every failed rule. There is no override: an operator who must deploy anyway changes the policy,
which the audit trail records."""

import getpass

from django.core.management.base import CommandError

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
        parser.add_argument(
            "--dry-run", action="store_true", help="show the promotion policies' checks; deploy nothing"
        )

    def handle(self, *args, **options):
        version = selectors.get_version(options["model"], self.model_version(options))
        if options["dry_run"]:
            check = services.check_deploy(version=version, target=options["target"], acting_user=self.operator)
            for result in check.checks:
                self.stdout.write(f"  [{'pass' if result.passed else 'FAIL'}] {result.summary()} ({result.policy})")
            verdict = "would be allowed" if check.allowed else "would be refused"
            self.stdout.write(f"Dry run: deploying {version} to {check.target.name} {verdict}; nothing was deployed.")
            if not check.allowed:
                raise CommandError(f"The promotion policy of '{check.target.name}' would refuse {version}.")
            return
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
