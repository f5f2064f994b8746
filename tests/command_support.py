"""What every command test checks about arguments: a missing or wrong one ends the command with a
message, never with nothing done and exit 0."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def assert_argument_error(command: str, args: list[str], match: str) -> None:
    """`manage.py <command> <args>` refuses with a message matching `match`. call_command raises the
    CommandError that manage.py prints before exiting non-zero (usage errors exit 2, the others 1); a
    command that printed something and exited 0 (Django's --version) raises SystemExit here instead."""
    with pytest.raises(CommandError, match=match):
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
