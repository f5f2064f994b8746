"""The base of the registry's management commands: they act as the shell's Operator (shell access to
manage.py is operator authority, registry_site.permissions) and what they write is audited as the
operating-system user's; a refusal by the registry's rules (a RegistryError) ends the command with its
message; and the progress lines they share are here."""

from __future__ import annotations

import getpass
from argparse import ArgumentTypeError
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry_site import audit
from registry_site.errors import RegistryError
from registry_site.json_values import parse_json_text
from registry_site.permissions import Operator


def json_argument(text: str) -> Any:
    """An option's JSON value (argparse `type=`): a usage error saying what is wrong with it otherwise."""
    try:
        return parse_json_text(text)
    except ValidationError as exc:
        raise ArgumentTypeError(exc.messages[0]) from None


class IntermixedCommandParser(CommandParser):
    """Options and arguments in any order, with an optional argument among them (the version, which may
    come as --version instead): plain parse_args would give `register_version m --format onnx v1`'s
    optional version nothing at "m" and then refuse "v1" as unrecognized."""

    def parse_args(self, args=None, namespace=None):
        return self.parse_intermixed_args(args, namespace)


class RegistryCommand(BaseCommand):
    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = IntermixedCommandParser  # Django builds a CommandParser; same state, other parse
        return parser

    def add_base_argument(self, parser, *args, **kwargs):
        """Every Django command takes --version and answers it by printing Django's version and exiting
        0. The registry's commands deal in model versions: `register_version m --version v8` printed
        5.2 and registered nothing. They leave it out (it is then an unknown option, an error, exit 2);
        the commands that name a version take it as that version. `manage.py --version` still works."""
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_model_version_argument(self, parser) -> None:
        """The model version: positional, or as --version / --model-version (exactly one of them)."""
        parser.add_argument("version", nargs="?", help="the version (or give it as --version)")
        parser.add_argument("--version", "--model-version", dest="version_option", metavar="VERSION")

    def model_version(self, options) -> str:
        positional, option = options.get("version"), options.get("version_option")
        if positional is not None and option is not None and positional != option:
            raise CommandError(f"Two different versions given: '{positional}' and --version '{option}'.")
        version = positional if positional is not None else option
        if version is None:
            raise CommandError("Give the version: as the argument after the model, or as --version VERSION.")
        return version

    def user_named(self, username: str, *, create: bool = False):
        """The user called `username`; with `create` (--create-user) one is made when missing, without a
        password: it signs in only with its tokens."""
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"No user '{username}' (use --create-user to create one).")
            user = User.objects.create_user(username=username)
        return user

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

    def filterset(self, filterset_class, given: dict[str, str], queryset):
        """The API's filters of a list (`filterset_class`) on `queryset` with `given` (option name: text),
        checked: a bad value ends the command naming its option. Its `.qs` is the filtered list."""
        filterset = filterset_class(given, queryset=queryset)
        if not filterset.is_valid():
            raise CommandError(
                "; ".join(f"--{name}: {' '.join(messages)}" for name, messages in filterset.errors.items())
            )
        return filterset

    def progress(self, what: str) -> Callable[[int, int, int], None]:
        """A progress callback (done, total, bytes) that prints every 100 items and at the end."""

        def report(done: int, total: int, nbytes: int) -> None:
            if done == total or done % 100 == 0:
                self.stdout.write(f"  {done}/{total} {what}, {nbytes} bytes")

        return report
