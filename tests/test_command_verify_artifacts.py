from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.command_support import assert_argument_error


def run(*args):
    out = StringIO()
    call_command("verify_artifacts", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_all_files_whole(make_version, storage_dir):
    make_version(version="v1", data=b"a" * 5000)
    make_version(version="v1", data=b"b" * 3000)
    output = run()
    assert "2 files checked, 8000 bytes read: 0 missing, 0 corrupted, 0 orphaned" in output
    assert "2/2 files read, 8000 bytes" in output


@pytest.mark.django_db
def test_a_flipped_byte_is_reported_and_fails(make_version, storage_dir):
    version = make_version(data=b"weights that will rot " * 100)
    path = storage_dir / version.file_path
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="1 corrupted"):
        run()
    with pytest.raises(CommandError):
        run("--model", version.model.name)


@pytest.mark.django_db
def test_missing_and_orphaned_files(make_version, storage_dir):
    version = make_version(data=b"to be lost")
    (storage_dir / version.file_path).unlink()
    stray = storage_dir / "sha256" / "00" / "00" / ("00" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"nobody's")
    out = StringIO()
    with pytest.raises(CommandError, match="1 missing, 0 corrupted, 1 orphaned"):
        call_command("verify_artifacts", stdout=out)
    assert f"MISSING   {version.checksum}" in out.getvalue()
    assert "ORPHANED  sha256/00/00/" in out.getvalue()


@pytest.mark.django_db
def test_model_filter(make_model, make_version, storage_dir):
    good = make_version(make_model(), data=b"good")
    bad = make_version(make_model(), data=b"bad")
    (storage_dir / bad.file_path).write_bytes(b"BAD")
    assert "1 files checked" in run("--model", good.model.name)
    with pytest.raises(CommandError, match="Model .* not found"):
        run("--model", "nope")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        (["--model"], "expected one argument"),
        (["--model", "ghost"], "Model 'ghost' not found"),
        (["everything"], "unrecognized arguments: everything"),
        (["--version"], "unrecognized arguments: --version"),
    ],
)
def test_argument_errors_say_what_is_wrong(args, match):
    assert_argument_error("verify_artifacts", args, match)
