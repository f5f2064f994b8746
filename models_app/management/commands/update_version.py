"""manage.py update_version MODEL VERSION [--status S] [--accuracy 0.9 ...] [--metrics '{"auc": 0.93, "old": null}']
[--tags '{"team": "vision"}'] [--release-notes TEXT] [--training-run ID] [--deployment-config JSON] ..."""

from __future__ import annotations

from django.core.management.base import CommandError

from models_app import selectors, services
from models_app.management.version_arguments import add_version_metadata_arguments, version_metadata
from registry_site.commands import RegistryCommand, json_argument


class Command(RegistryCommand):
    help = (
        "Change a version's metadata, as PATCH /models/{m}/versions/{v} does: metrics and tags are merge "
        "patches (the names given are set, null removes one); a changed metric is a point of its history."
    )

    def add_arguments(self, parser):
        parser.add_argument("model")
        self.add_model_version_argument(parser)
        add_version_metadata_arguments(parser)
        parser.add_argument("--deployment-config", dest="deployment_config", type=json_argument, help="JSON object")

    def handle(self, *args, **options):
        version = selectors.get_version(options["model"], self.model_version(options))
        changes = version_metadata(options)
        if options["deployment_config"] is not None:
            changes["deployment_config"] = options["deployment_config"]
        if not changes:
            raise CommandError("Nothing to change: give at least one of the version's fields (see --help).")
        version = services.update_version(version=version, changes=changes)
        self.stdout.write(f"Updated {version.model.name}:{version.version} ({', '.join(sorted(changes))}).")
