"""manage.py grant_role USER ROLE [--revoke] [--create-user]"""

from django.db import transaction

from registry_site.commands import RegistryCommand
from registry_site.roles import ROLES, grant_role


class Command(RegistryCommand):
    help = (
        "Give a user a role (viewer, editor, deployer, admin), or take it away with --revoke. Every token of "
        "the user gains or loses it at once, within each token's scope."
    )

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument("role", choices=tuple(ROLES))
        parser.add_argument("--revoke", action="store_true", help="take the role away instead")
        parser.add_argument("--create-user", action="store_true", help="create the user if it does not exist")

    def handle(self, *args, **options):
        with transaction.atomic():
            user = self.user_named(options["user"], create=options["create_user"] and not options["revoke"])
            changed = grant_role(user=user, role=options["role"], revoke=options["revoke"])
        roles = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "no role"
        if changed:
            verb = "no longer has" if options["revoke"] else "now has"
        else:
            verb = "did not have" if options["revoke"] else "already had"
        self.stdout.write(f"{user.get_username()} {verb} the {options['role']} role (roles: {roles}).")
