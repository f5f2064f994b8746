from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deployments_app.models import Deployment
from deployments_app.services import deploy_version
from registry_site.permissions import Operator
from tests.command_support import assert_argument_error


@pytest.mark.django_db
def test_rolls_back_to_the_previous_deployment_then_empties_the_target(make_model, make_version):
    model = make_model()
    first = deploy_version(
        version=make_version(model, "v1", data=b"one"), target="production", acting_user=Operator()
    ).deployment
    second = deploy_version(
        version=make_version(model, "v2", data=b"two"), target="production", acting_user=Operator()
    ).deployment
    out = StringIO()
    call_command("rollback", str(second.pk), "--reason", "bad latency", stdout=out)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.deployment_status == "rolled_back" and second.rollback_reason == "bad latency"
    assert first.deployment_status == "active"
    assert "'v1' is active on 'production' again" in out.getvalue()

    out = StringIO()
    call_command("rollback", str(first.pk), stdout=out)
    assert "now empty" in out.getvalue()
    assert not Deployment.objects.filter(deployment_status="active").exists()


@pytest.mark.django_db
def test_refuses_inactive_and_unknown_deployments(make_model, make_version):
    model = make_model()
    first = deploy_version(
        version=make_version(model, "v1", data=b"one"), target="production", acting_user=Operator()
    ).deployment
    deploy_version(version=make_version(model, "v2", data=b"two"), target="production", acting_user=Operator())
    with pytest.raises(CommandError, match="superseded"):
        call_command("rollback", str(first.pk))
    with pytest.raises(CommandError, match="Deployment .* not found"):
        call_command("rollback", "999999")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: deployment_id"),
        (["latest"], "invalid int value: 'latest'"),
        (["1", "--reason"], "expected one argument"),
        (["1", "--version"], "unrecognized arguments: --version"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    assert_argument_error("rollback", args, match)
