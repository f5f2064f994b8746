"""manage.py create_token USER [--role viewer|editor|deployer|admin] [--name NAME] [--expires-days N]"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from registry_site.authentication import issue_token
from registry_site.commands import RegistryCommand
from registry_site.roles import ROLES, ensure_roles


class Command(RegistryCommand):
    help = "Create an API token for a user (optionally giving the user a role); the token is printed once."

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument("--role", choices=tuple(ROLES), help="add the user to this role's group")
        parser.add_argument("--name", default="cli", help="what the token is for")
        parser.add_argument("--expires-days", type=int, help="the token stops working after this many days")
        parser.add_argument("--create-user", action="store_true", help="create the user if it does not exist")

    def handle(self, *args, **options):
        User = get_user_model()
        if options["expires_days"] is not None and options["expires_days"] <= 0:
            raise CommandError("--expires-days must be positive.")
        with transaction.atomic():
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                if not options["create_user"]:
                    raise CommandError(f"No user '{options['user']}' (use --create-user to create one).")
                user = User.objects.create_user(username=options["user"])  # no password: token-only
            if options["role"]:
                ensure_roles(Group, Permission)
                user.groups.add(Group.objects.get(name=options["role"]))
            expires = timezone.now() + timedelta(days=options["expires_days"]) if options["expires_days"] else None
            row, token = issue_token(user=user, name=options["name"], expires_at=expires)
        roles = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "no role"
        self.stderr.write(
            f"Token '{row.name}' for {user.get_username()} ({roles})"
            + (f", expires {expires:%Y-%m-%d}" if expires else "")
            + ". It is shown only now:"
        )
        self.stdout.write(token)
