"""A file is checked against its declared format by listing or reading headers only."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile

import pytest

from models_app.format_checks import check_format
from models_app.models import ModelVersion
from tests.conftest import stored_files, upload


def zip_bytes(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"contents")
    return buffer.getvalue()


def tar_bytes(*names: str, mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 8
            archive.addfile(info, io.BytesIO(b"contents"))
    return buffer.getvalue()


def varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def onnx_bytes() -> bytes:
    """A ModelProto's fields as onnx writes them: ir_version, producer, opset_import, graph."""
    producer = b"pytorch"
    graph = b"\x0a\x04node" * 3
    opset = b"\x10\x11"
    return (
        b"\x08\x08"
        + b"\x12"
        + varint(len(producer))
        + producer
        + b"\x3a"
        + varint(len(graph))
        + graph
        + b"\x42"
        + varint(len(opset))
        + opset
    )


CASES = [
    ("tensorflow_saved_model", zip_bytes("my_model/saved_model.pb", "my_model/variables/variables.index"), "passed"),
    ("tensorflow_saved_model", tar_bytes("export/saved_model.pb"), "passed"),
    ("tensorflow_saved_model", tar_bytes("export/saved_model.pb", mode="w:gz"), "skipped"),
    ("tensorflow_saved_model", zip_bytes("model.h5"), "failed"),
    ("tensorflow_saved_model", b"just bytes", "failed"),
    ("tflite", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 100, "passed"),
    ("tflite", b"\x1c\x00\x00\x00ONNX" + b"\x00" * 100, "failed"),
    ("onnx", onnx_bytes(), "passed"),
    ("onnx", b"PK\x03\x04 a zip, not onnx", "failed"),
    ("onnx", b"\x08", "failed"),
    ("pytorch", zip_bytes("archive/data.pkl", "archive/data/0", "archive/version"), "passed"),
    ("pytorch", pickle.dumps({"state": [1, 2]}, protocol=2), "passed"),
    ("pytorch", zip_bytes("weights.bin"), "failed"),
    ("pytorch", b"GGUF model", "failed"),
]


# Named by position, not by their bytes: zip and gzip headers hold the time they were made, and every
# xdist worker must collect the same test names.
@pytest.mark.parametrize("declared, data, expected", CASES, ids=[f"{d}-{i}-{e}" for i, (d, _, e) in enumerate(CASES)])
def test_check_format(tmp_path, declared, data, expected):
    path = tmp_path / "model"
    path.write_bytes(data)
    result = check_format(declared, str(path))
    assert result.result == expected, result.detail
    assert result.detail


def test_a_pickle_is_never_loaded(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps([1], protocol=4))

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert check_format("pytorch", str(path)).result == "passed"


@pytest.mark.django_db
def test_the_result_is_recorded_on_the_version(api, make_model):
    model = make_model()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "tflite", "file": upload(b"not a flatbuffer at all")},
        format="multipart",
    )
    assert response.status_code == 201
    assert response.json()["format_check"] == "failed"
    assert "TFL3" in response.json()["format_check_detail"]
    response = api.post(f"/models/{model.name}/versions", {"version": "v2", "format": "onnx"}, format="json")
    assert response.json()["format_check"] == ""


@pytest.mark.django_db
def test_refusing_mismatches_is_a_setting(api, make_model, settings, storage_dir):
    settings.REGISTRY_REJECT_FORMAT_MISMATCH = True
    model = make_model()
    response = api.post(
        f"/models/{model.name}/versions",
        {"version": "v1", "format": "tflite", "file": upload(b"not a flatbuffer at all")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "file" in response.json()["errors"]
    assert not ModelVersion.objects.exists()
    assert stored_files(storage_dir) == []


@pytest.mark.django_db
def test_the_format_of_a_stored_file_cannot_change(api, make_version):
    version = make_version(format="onnx")
    response = api.patch(f"/models/{version.model.name}/versions/v1", {"format": "tflite"}, format="json")
    assert response.status_code == 409
    assert "format" in response.json()["errors"]
