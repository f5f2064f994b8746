"""manage.py targets: list, create, update and delete deployment targets through the same services as
/targets and the admin."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deployments_app.models import Deployment, Target
from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("targets", *args, stdout=out)
    return out.getvalue()


def test_lists_the_targets_in_display_order():
    lines = run().splitlines()
    assert lines == run("list").splitlines()
    assert [line.split("\t")[0] for line in lines][:2] == ["staging", "production"]
    assert lines[1].split("\t")[:3] == ["production", "protected", "20"]


def test_creates_updates_and_deletes_a_target():
    assert run("create", "eu-west", "--description", "Frankfurt", "--order", "5") == "Created target eu-west.\n"
    target = Target.objects.get(name="eu-west")
    assert (target.description, target.protected, target.display_order) == ("Frankfurt", False, 5)
    assert run("update", "EU-WEST", "--protected") == "Updated target eu-west.\n"
    assert Target.objects.get(name="eu-west").protected
    run("update", "eu-west", "--unprotected", "--order", "9")
    target.refresh_from_db()
    assert (target.protected, target.display_order) == (False, 9)
    assert run("delete", "eu-west") == "Deleted target eu-west.\n"
    assert not Target.objects.filter(name="eu-west").exists()
    assert [(e.action, e.via) for e in AuditEvent.objects.filter(object_type="target").order_by("id")] == [
        ("create_target", "command"),
        ("update_target", "command"),
        ("update_target", "command"),
        ("delete_target", "command"),
    ]
    assert "(protected)" in run("create", "vault", "--protected")


def test_refusals_are_command_errors_that_change_nothing(world):
    with pytest.raises(CommandError, match="exists already"):
        run("create", "Production")
    with pytest.raises(CommandError, match="deployment history"):
        run("delete", "staging")  # the world's v1 is active there
    with pytest.raises(CommandError, match="Target 'nowhere' not found"):
        run("update", "nowhere", "--protected")
    with pytest.raises(CommandError, match="Use 1-64 ASCII"):
        run("create", "bad/name")
    with pytest.raises(CommandError, match="Nothing to change"):
        run("update", "staging")
    assert Target.objects.filter(name__iexact="production").count() == 1
    assert Deployment.objects.filter(deployment_target="staging").exists()
    assert not AuditEvent.objects.filter(object_type="target").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["create"], "Give the target's name"),
        (["delete"], "Give the target's name"),
        (["rename", "x"], "invalid choice: 'rename'"),
        (["list", "--protected"], "takes no"),
        (["create", "x", "--order", "first"], "invalid int value"),
        (["create", "x", "--order", "-1"], "display_order"),
        (["update", "x", "--protected", "--unprotected", "--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    before = list(Target.objects.values())
    assert_argument_error("targets", args, match)
    assert list(Target.objects.values()) == before
