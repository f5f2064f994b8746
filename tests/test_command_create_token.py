from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from registry_site.authentication import digest_of
from registry_site.models import ApiToken, AuditEvent
from tests.command_support import assert_argument_error
from tests.conftest import user_with_role


def create(*args):
    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.mark.django_db
def test_creates_a_token_with_its_scope_and_stores_only_its_hash():
    token, note = create(
        "ci-bot", "--create-user", "--scope", "read", "--scope", "deploy:staging,qa", "--models", "vision-*",
        "--name", "ci", "--expires-days", "30",
    )  # fmt: skip
    assert token.startswith("mvr_") and len(token) > 40
    row = ApiToken.objects.get()
    assert row.digest == digest_of(token) and token not in (row.digest, row.prefix)
    assert row.user.username == "ci-bot" and row.name == "ci" and row.expires_at is not None
    assert (row.scope_read, row.scope_write, row.scope_deploy, row.scope_admin) == (True, False, True, False)
    assert (row.deploy_targets, row.model_pattern) == ("staging,qa", "vision-*")
    assert "shown only now" in note and "scope: read deploy:staging,qa; models vision-*" in note and token not in note
    event = AuditEvent.objects.get(action="create_token")
    assert event.via == "command" and event.changes["user"] == "ci-bot"
    assert event.changes["scopes"] == ["read", "deploy:staging,qa"] and event.changes["models"] == "vision-*"


@pytest.mark.django_db
def test_all_is_every_scope_without_limits():
    user_with_role("ops", "admin")
    create("ops", "--scope", "all")
    row = ApiToken.objects.get()
    assert (row.scope_read, row.scope_write, row.scope_deploy, row.scope_admin) == (True, True, True, True)
    assert (row.deploy_targets, row.model_pattern) == ("", "")


@pytest.mark.django_db
def test_says_which_scopes_the_users_roles_leave_empty():
    user_with_role("val", "viewer")
    _, note = create("val", "--scope", "read", "--scope", "write", "--scope", "deploy:staging")
    assert "val's roles give nothing in the write and deploy scope" in note and "grant_role" in note
    user_with_role("eddie", "editor")
    _, note = create("eddie", "--scope", "read", "--scope", "write")
    assert "Note" not in note


@pytest.mark.django_db
def test_never_changes_the_users_roles():
    """--role used to add the user to the role's group: every token the user had got the role too."""
    user = user_with_role("alice", "viewer")
    create("alice", "--scope", "all")
    with pytest.raises(CommandError, match="grant_role"):
        create("alice", "--scope", "all", "--role", "deployer")
    assert list(user.groups.values_list("name", flat=True)) == ["viewer"]
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_refuses_unknown_users_and_bad_arguments():
    with pytest.raises(CommandError, match="No user"):
        create("ghost", "--scope", "read")
    User.objects.create_user("alice")
    with pytest.raises(CommandError, match="positive"):
        create("alice", "--scope", "read", "--expires-days", "0")
    assert not ApiToken.objects.exists()
    assert not User.objects.filter(username="ghost").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: user"),
        (["bob"], "Give the token's scope"),
        (["bob", "--scope", "superuser"], "Unknown scope 'superuser'"),
        (["bob", "--scope", "read:staging"], "Unknown scope 'read:staging'"),
        (["bob", "--scope", "read", "--scope", "all"], "The read scope is given twice"),
        (["bob", "--scope", "deploy:"], "names no target"),
        (["bob", "--scope", "deploy:staging,"], "deploy_targets: Target names separated by commas"),
        (["bob", "--scope", "deploy:staging,Staging"], "named twice"),
        (["bob", "--scope", "read", "--models", "vision/*"], "model_pattern: A model pattern is"),
        (["bob", "--scope", "read", "--models", "[ab]*"], "model_pattern: A model pattern is"),
        (["bob", "--scope", "read", "--role", "editor"], "no longer changes roles"),
        (["bob", "--scope", "read", "--expires-days", "soon"], "invalid int value: 'soon'"),
        (["bob", "--scope", "read", "--expires-days", "0"], "--expires-days must be positive"),
        (["nobody", "--scope", "read"], "No user 'nobody'"),
        (["bob", "--version"], "unrecognized arguments: --version"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    User.objects.create_user("bob")
    assert_argument_error("create_token", args, match)
    assert not ApiToken.objects.exists()
