from io import StringIO

import pytest
from django.core.management import call_command

from tests.command_support import assert_argument_error


@pytest.mark.django_db
def test_bytes_per_model_and_shared_files_counted_once(make_model, make_version):
    vision = make_model("vision")
    audio = make_model("audio")
    make_version(vision, "v1", data=b"x" * 1000)
    make_version(vision, "v2", data=b"x" * 1000)  # the same file as v1
    make_version(vision, "v3", data=b"y" * 500)
    make_version(audio, "v1", data=b"x" * 1000)  # shared with vision too
    make_version(audio, "v2", data=None)
    out = StringIO()
    call_command("storage_usage", stdout=out)
    lines = {line.split()[0]: line.split()[-2:] for line in out.getvalue().splitlines()[1:]}
    assert lines["vision"] == ["2", "1500"]
    assert lines["audio"] == ["1", "1000"]
    assert out.getvalue().splitlines()[-1].split()[-2:] == ["2", "1500"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [(["resnet"], "unrecognized arguments: resnet"), (["--version"], "unrecognized arguments: --version")],
)
def test_argument_errors_say_what_is_wrong(args, match):
    assert_argument_error("storage_usage", args, match)
