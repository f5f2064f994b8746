"""manage.py targets [list] | create NAME [--description TEXT] [--protected] [--order N]
| update NAME [--description TEXT] [--protected | --unprotected] [--order N] | delete NAME"""

from django.core.management.base import CommandError

from deployments_app import selectors, services
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "List, create, change or delete deployment targets (a protected target needs the deployer role)."

    def add_arguments(self, parser):
        # One positional action rather than subcommands: the registry's commands parse options and
        # arguments intermixed (registry_site.commands), which argparse's subparsers do not allow.
        parser.add_argument("action", nargs="?", default="list", choices=["list", "create", "update", "delete"])
        parser.add_argument("name", nargs="?", help="the target (create, update, delete)")
        parser.add_argument("--description", help="create, update")
        parser.add_argument(
            "--protected",
            action="store_true",
            default=None,
            help="create, update: deploying there needs the deployer role",
        )
        parser.add_argument("--unprotected", dest="protected", action="store_false", default=None, help="update")
        parser.add_argument("--order", type=int, help="create, update: display order (default 100)")

    def handle(self, *args, **options):
        action = options["action"]
        if action != "list" and not options["name"]:
            raise CommandError(f"Give the target's name: targets {action} NAME.")
        if action in ("list", "delete") and any(options[o] is not None for o in ("description", "protected", "order")):
            raise CommandError(f"targets {action} takes no --description, --protected, --unprotected or --order.")
        if action == "list":
            for target in selectors.targets():
                flag = "protected" if target.protected else "-"
                self.stdout.write(f"{target.name}\t{flag}\t{target.display_order}\t{target.description}")
        elif action == "create":
            target = services.create_target(
                name=options["name"],
                description=options["description"] or "",
                protected=bool(options["protected"]),
                display_order=100 if options["order"] is None else options["order"],
            )
            self.stdout.write(f"Created target {target.name}{' (protected)' if target.protected else ''}.")
        elif action == "update":
            changes = {
                field: options[option]
                for field, option in (
                    ("description", "description"),
                    ("protected", "protected"),
                    ("display_order", "order"),
                )
                if options[option] is not None
            }
            if not changes:
                raise CommandError("Nothing to change: give --description, --protected/--unprotected or --order.")
            target = services.update_target(target=selectors.get_target_or_404(options["name"]), changes=changes)
            self.stdout.write(f"Updated target {target.name}.")
        else:
            target = selectors.get_target_or_404(options["name"])
            services.delete_target(target=target)
            self.stdout.write(f"Deleted target {target.name}.")
