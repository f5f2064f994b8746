from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.models import ModelVersion
from tests.command_support import assert_argument_error
from tests.conftest import sha256, staged_files, stored_files


@pytest.mark.django_db
def test_registers_a_version_with_its_file(make_model, tmp_path, storage_dir):
    model = make_model()
    weights = tmp_path / "resnet.onnx"
    weights.write_bytes(b"onnx weights " * 1000)
    out = StringIO()
    call_command(
        "register_version",
        model.name,
        "v1.2.0",
        "--format",
        "onnx",
        "--file",
        str(weights),
        "--accuracy",
        "0.93",
        "--input-shape",
        "[1,3,224,224]",
        stdout=out,
    )
    version = ModelVersion.objects.get(model=model, version="v1.2.0")
    assert version.checksum == sha256(weights.read_bytes())
    assert version.file_size == weights.stat().st_size
    assert version.file_name == "resnet.onnx"
    assert version.accuracy == 0.93 and version.input_shape == [1, 3, 224, 224]
    assert version.is_default
    assert version.checksum in out.getvalue()
    assert (storage_dir / version.file_path).read_bytes() == weights.read_bytes()
    assert staged_files(storage_dir) == []


@pytest.mark.django_db
def test_refuses_invalid_values_like_the_api(make_model, storage_dir):
    model = make_model()
    with pytest.raises(CommandError, match="accuracy"):
        call_command("register_version", model.name, "v1", "--format", "onnx", "--accuracy", "nan")
    with pytest.raises(CommandError, match="format"):
        call_command("register_version", model.name, "v1", "--format", "keras")
    with pytest.raises(CommandError, match="Model .missing. not found"):
        call_command("register_version", "missing", "v1", "--format", "onnx")
    assert not ModelVersion.objects.exists()
    assert stored_files(storage_dir) == []


@pytest.mark.django_db
def test_refuses_a_version_that_exists_and_stores_nothing(make_version, tmp_path, storage_dir):
    existing = make_version(version="v1")
    weights = tmp_path / "other.onnx"
    weights.write_bytes(b"different bytes")
    before = stored_files(storage_dir)
    with pytest.raises(CommandError, match="already exists"):
        call_command("register_version", existing.model.name, "v1", "--format", "onnx", "--file", str(weights))
    assert stored_files(storage_dir) == before
    assert staged_files(storage_dir) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, match",
    [
        ([], "the following arguments are required: --format"),
        (["--format", "onnx"], "the following arguments are required: model"),
        (["resnet", "--format", "onnx"], "Give the version"),
        (["resnet", "v1"], "the following arguments are required: --format"),
        (["resnet", "v1", "--format", "onnx", "--accuracy", "high"], "invalid float value: 'high'"),
        (["resnet", "v1", "--format", "onnx", "--input-shape", "[1,"], "input-shape"),
        (["resnet", "v1", "--version", "v2", "--format", "onnx"], "Two different versions"),
        (
            ["resnet", "-v1", "--format", "onnx"],
            "Give the version",
        ),  # -v1 is --verbosity 1: why no version starts with a dash
        (["resnet", "--version", "-v1", "--format", "onnx"], "expected one argument"),
        (["resnet", "v1", "--format", "onnx", "--file", "/nonexistent/m.onnx"], "Cannot read /nonexistent/m.onnx"),
    ],
)
def test_argument_errors_say_what_is_wrong(make_model, storage_dir, args, match):
    make_model(name="resnet")
    assert_argument_error("register_version", args, match)
    assert not ModelVersion.objects.exists()
    assert stored_files(storage_dir) == []


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--version", "--model-version"])
def test_the_version_may_be_given_as_an_option(make_model, option):
    """`--version` used to be Django's own: it printed 5.2.x, exited 0 and registered nothing."""
    make_model(name="yolo_detector")
    out = StringIO()
    call_command("register_version", "yolo_detector", option, "v8", "--format", "onnx", stdout=out)
    assert ModelVersion.objects.get().version == "v8"
    assert "Registered yolo_detector:v8" in out.getvalue()


@pytest.mark.subprocess
def test_on_the_command_line_errors_exit_non_zero_and_version_registers(tmp_path):
    import os
    import subprocess
    import sys

    from tests.live import ROOT

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DATABASE_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
        "REGISTRY_DATA_DIR": str(tmp_path),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    assert manage("migrate", "-v0").returncode == 0
    missing = manage("register_version", "yolo_detector", "--format", "onnx")
    assert missing.returncode == 1 and "Give the version" in missing.stderr
    usage = manage("register_version", "--format", "onnx")
    assert usage.returncode == 2 and "required: model" in usage.stderr
    unknown = manage("register_version", "yolo_detector", "--version", "v8", "--format", "onnx")
    assert unknown.returncode == 1 and "Model 'yolo_detector' not found" in unknown.stderr
    code = "from models_app import services; services.create_model(name='yolo_detector', model_type='object_detection')"
    assert manage("shell", "-c", code).returncode == 0
    made = manage("register_version", "yolo_detector", "--version", "v8", "--format", "onnx")
    assert made.returncode == 0, made.stderr
    assert "Registered yolo_detector:v8" in made.stdout
