from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from registry_site.authentication import digest_of
from registry_site.models import ApiToken, AuditEvent
from tests.command_support import assert_argument_error


def create(*args):
    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.mark.django_db
def test_creates_a_token_stores_only_its_hash_and_gives_the_role():
    token, note = create("ci-bot", "--create-user", "--role", "editor", "--name", "ci", "--expires-days", "30")
    assert token.startswith("mvr_") and len(token) > 40
    row = ApiToken.objects.get()
    assert row.digest == digest_of(token) and token not in (row.digest, row.prefix)
    assert row.user.username == "ci-bot" and row.name == "ci" and row.expires_at is not None
    assert list(row.user.groups.values_list("name", flat=True)) == ["editor"]
    assert "shown only now" in note and token not in note
    event = AuditEvent.objects.get(action="create_token")
    assert event.via == "command" and event.changes["user"] == "ci-bot"


@pytest.mark.django_db
def test_refuses_unknown_users_and_bad_arguments():
    with pytest.raises(CommandError, match="No user"):
        create("ghost")
    User.objects.create_user("alice")
    with pytest.raises(CommandError, match="positive"):
        create("alice", "--expires-days", "0")
    with pytest.raises(CommandError):
        create("alice", "--role", "superhero")
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: user"),
        (["bob", "--role", "boss"], "invalid choice: 'boss'"),
        (["bob", "--expires-days", "soon"], "invalid int value: 'soon'"),
        (["bob", "--expires-days", "0"], "--expires-days must be positive"),
        (["nobody"], "No user 'nobody'"),
        (["bob", "--version"], "unrecognized arguments: --version"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    User.objects.create_user("bob")
    assert_argument_error("create_token", args, match)
    assert not ApiToken.objects.exists()
