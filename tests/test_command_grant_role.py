from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from registry_site.models import AuditEvent
from tests.command_support import assert_argument_error


def grant(*args) -> str:
    out = StringIO()
    call_command("grant_role", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def roles_of(username: str) -> list[str]:
    return list(User.objects.get(username=username).groups.order_by("name").values_list("name", flat=True))


@pytest.mark.django_db
def test_grants_and_revokes_a_role_audited():
    assert grant("ci-bot", "editor", "--create-user") == "ci-bot now has the editor role (roles: editor)."
    assert grant("ci-bot", "deployer") == "ci-bot now has the deployer role (roles: deployer, editor)."
    assert grant("ci-bot", "editor") == "ci-bot already had the editor role (roles: deployer, editor)."
    assert grant("ci-bot", "editor", "--revoke") == "ci-bot no longer has the editor role (roles: deployer)."
    assert roles_of("ci-bot") == ["deployer"]
    events = AuditEvent.objects.filter(object_type="user").order_by("id")
    assert [(e.action, e.object_repr, e.changes["role"], e.via) for e in events] == [
        ("grant_role", "ci-bot", "editor", "command"),
        ("grant_role", "ci-bot", "deployer", "command"),
        ("revoke_role", "ci-bot", "editor", "command"),
    ]


@pytest.mark.django_db(transaction=True)
def test_remakes_a_role_group_someone_removed():
    Group.objects.filter(name="viewer").delete()
    grant("alice", "viewer", "--create-user")
    assert roles_of("alice") == ["viewer"]
    assert Group.objects.get(name="viewer").permissions.filter(codename="view_modelversion").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: user, role"),
        (["bob"], "the following arguments are required: role"),
        (["bob", "boss"], "invalid choice: 'boss'"),
        (["nobody", "viewer"], "No user 'nobody'"),
        (["nobody", "viewer", "--revoke", "--create-user"], "No user 'nobody'"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    User.objects.create_user("bob")
    assert_argument_error("grant_role", args, match)
    assert not AuditEvent.objects.exists()
    assert roles_of("bob") == []
