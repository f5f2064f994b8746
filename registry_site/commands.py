"""The base of the registry's management commands: they act as the shell's Operator (shell access to
manage.py is operator authority, registry_site.permissions) and what they write is audited as the
operating-system user's; a refusal by the registry's rules (a RegistryError) ends the command with its
message; and the progress lines they share are here."""

from __future__ import annotations

import getpass
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from registry_site import audit
from registry_site.errors import RegistryError
from registry_site.permissions import Operator


class RegistryCommand(BaseCommand):
    @property
    def operator(self) -> Operator:
        """Who acts, for the services that check a rule."""
        return Operator(f"{getpass.getuser()} (shell)")

    def execute(self, *args, **options):
        with audit.acting_from_command():
            try:
                return super().execute(*args, **options)
            except RegistryError as exc:
                raise CommandError(exc.message) from None

    def progress(self, what: str) -> Callable[[int, int, int], None]:
        """A progress callback (done, total, bytes) that prints every 100 items and at the end."""

        def report(done: int, total: int, nbytes: int) -> None:
            if done == total or done % 100 == 0:
                self.stdout.write(f"  {done}/{total} {what}, {nbytes} bytes")

        return report
