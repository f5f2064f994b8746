from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.models import ModelVersion
from tests.command_support import assert_argument_error


@pytest.mark.django_db
def test_moves_the_default(make_model, make_version):
    model = make_model()
    v1 = make_version(model, "v1")
    make_version(model, "v2")
    out = StringIO()
    call_command("set_default", model.name, "v2", stdout=out)
    assert list(ModelVersion.objects.filter(model=model, is_default=True).values_list("version", flat=True)) == ["v2"]
    v1.refresh_from_db()
    assert not v1.is_default
    assert "now the default" in out.getvalue()


@pytest.mark.django_db
def test_refuses_archived_and_unknown_versions(make_model, make_version):
    model = make_model()
    make_version(model, "v1")
    make_version(model, "v2", status="archived")
    with pytest.raises(CommandError, match="archived"):
        call_command("set_default", model.name, "v2")
    with pytest.raises(CommandError, match="Version .* not found"):
        call_command("set_default", model.name, "v9")
    assert ModelVersion.objects.get(model=model, is_default=True).version == "v1"


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: model"),
        (["resnet"], "Give the version"),
        (["resnet", "v2", "--version", "v1"], "Two different versions"),
        (["resnet", "v2", "v3"], "unrecognized arguments: v3"),
    ],
)
def test_argument_errors_say_what_is_wrong(world, args, match):
    assert_argument_error("set_default", args, match)
    assert ModelVersion.objects.get(is_default=True).version == "v1"


def test_the_version_may_be_given_as_an_option(world):
    call_command("set_default", "resnet", "--version", "v2", stdout=StringIO())
    assert ModelVersion.objects.get(is_default=True).version == "v2"
