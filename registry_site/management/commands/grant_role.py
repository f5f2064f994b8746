"""manage.py grant_role USER ROLE [--revoke] [--create-user]"""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
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
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                if not options["create_user"] or options["revoke"]:
                    raise CommandError(f"No user '{options['user']}' (use --create-user to create one).")
                user = User.objects.create_user(username=options["user"])  # no password: token-only
            changed = grant_role(user=user, role=options["role"], revoke=options["revoke"])
        roles = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "no role"
        if changed:
            verb = "no longer has" if options["revoke"] else "now has"
        else:
            verb = "did not have" if options["revoke"] else "already had"
        self.stdout.write(f"{user.get_username()} {verb} the {options['role']} role (roles: {roles}).")
