from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deployments_app.models import Deployment
from tests.command_support import assert_argument_error


@pytest.mark.django_db
def test_deploys_and_supersedes(make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=b"one")
    make_version(model, "v2", data=b"two")
    call_command("deploy", model.name, "v1", "production", "--by", "ops", stdout=StringIO())
    out = StringIO()
    call_command("deploy", model.name, "v2", "production", stdout=out)
    rows = {d.model_version.version: d for d in Deployment.objects.filter(model=model)}
    assert rows["v1"].deployment_status == "superseded" and rows["v1"].deployed_by == "ops"
    assert rows["v2"].deployment_status == "active"
    assert "Deployed" in out.getvalue()
    again = StringIO()
    call_command("deploy", model.name, "v2", "production", stdout=again)
    assert "Already active" in again.getvalue()
    assert Deployment.objects.filter(model=model).count() == 2


@pytest.mark.django_db
def test_refuses_a_version_without_a_file(make_model, make_version):
    model = make_model()
    make_version(model, "v1", data=None)
    with pytest.raises(CommandError, match="no file"):
        call_command("deploy", model.name, "v1", "production")
    with pytest.raises(CommandError, match="Version .* not found"):
        call_command("deploy", model.name, "v7", "production")
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: model"),
        (["resnet"], "the following arguments are required: target"),
        (["resnet", "staging"], "Give the version"),
        (["resnet", "v1", "staging", "extra"], "unrecognized arguments: extra"),
        (["resnet", "v1", "--version", "v2", "staging"], "Two different versions"),
        (["resnet", "v1", "-prod"], "unrecognized arguments: -prod|expected one argument|required: target"),
        (["resnet", "v1", "staging", "--by"], "expected one argument"),
    ],
)
def test_argument_errors_say_what_is_wrong(world, args, match):
    before = Deployment.objects.count()
    assert_argument_error("deploy", args, match)
    assert Deployment.objects.count() == before


def test_the_version_may_be_given_as_an_option(world):
    out = StringIO()
    call_command("deploy", "resnet", "--version", "v2", "staging", stdout=out)
    assert "Deployed resnet:v2 on staging" in out.getvalue()
