from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.models import ModelVersion
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
