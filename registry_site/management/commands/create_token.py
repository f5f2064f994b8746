"""manage.py create_token USER --scope SCOPE [--scope ...] [--models PATTERN] [--name NAME] [--expires-days N]
[--create-user]"""

from datetime import timedelta

from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from registry_site.authentication import issue_token
from registry_site.commands import RegistryCommand
from registry_site.permissions import TokenScope, scopes_beyond

ROLE_MOVED = (
    "create_token no longer changes roles (--role gave the role to every token the user had). Give the role "
    "with `manage.py grant_role USER ROLE` (or on the admin's user page), then create the token with --scope."
)


class Command(RegistryCommand):
    help = (
        "Create an API token for a user, with its scope; the token is printed once. The token may do what "
        "both its scope and its user's roles allow; the roles are not changed (manage.py grant_role does that)."
    )

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help="read, write, deploy, deploy:TARGET[,TARGET...], admin or all (every scope); repeat for several",
        )
        parser.add_argument(
            "--models", default="", metavar="PATTERN", help="only models matching this glob, e.g. 'vision-*'"
        )
        parser.add_argument("--name", default="cli", help="what the token is for")
        parser.add_argument("--expires-days", type=int, help="the token stops working after this many days")
        parser.add_argument("--create-user", action="store_true", help="create the user if it does not exist")
        parser.add_argument("--role", help="no longer taken: see manage.py grant_role")

    def handle(self, *args, **options):
        if options["role"] is not None:
            raise CommandError(ROLE_MOVED)
        if not options["scopes"]:
            raise CommandError(
                "Give the token's scope: --scope read, write, deploy, deploy:TARGET[,TARGET...], admin or all "
                "(repeat --scope for several)."
            )
        if options["expires_days"] is not None and options["expires_days"] <= 0:
            raise CommandError("--expires-days must be positive.")
        scope = TokenScope.parse(options["scopes"], models=options["models"])
        with transaction.atomic():
            user = self.user_named(options["user"], create=options["create_user"])
            expires = timezone.now() + timedelta(days=options["expires_days"]) if options["expires_days"] else None
            row, token = issue_token(user=user, name=options["name"], scope=scope, expires_at=expires)
        roles = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "no role"
        self.stderr.write(
            f"Token '{row.name}' for {user.get_username()} (roles: {roles}; scope: {row.scope})"
            + (f", expires {expires:%Y-%m-%d}" if expires else "")
            + ". It is shown only now:"
        )
        beyond = scopes_beyond(user, row.scope)
        if beyond:
            self.stderr.write(
                f"Note: {user.get_username()}'s roles give nothing in the {' and '.join(beyond)} scope, so the "
                "token can do nothing there until they do (manage.py grant_role)."
            )
        self.stdout.write(token)
