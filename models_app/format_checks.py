"""Does an uploaded file look like the format its version declares? Checked where it is cheap, on the
upload's temporary file before it is stored: archives are only listed (never extracted), headers are
only read, and no model file is ever loaded or unpickled.

The result is recorded on the version (passed / failed / skipped, with the reason). Whether a failed
check refuses the upload is a setting (REGISTRY_REJECT_FORMAT_MISMATCH), off by default.
"""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from models_app.models import ModelFormat

HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class FormatCheck:
    result: str  # "passed", "failed" or "skipped"
    detail: str


def _passed(detail: str) -> FormatCheck:
    return FormatCheck("passed", detail)


def _failed(detail: str) -> FormatCheck:
    return FormatCheck("failed", detail)


def _zip_names(path: str) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:  # reads the central directory only
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _check_saved_model(path: str, head: bytes) -> FormatCheck:
    names = _zip_names(path)
    kind = "zip"
    if names is None:
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
            return FormatCheck(
                "skipped", "compressed tar archives are not listed (it would mean decompressing the whole file)"
            )
        try:
            with tarfile.open(path, mode="r:") as archive:  # uncompressed: member headers are seeked over
                names = archive.getnames()
            kind = "tar"
        except (tarfile.TarError, OSError):
            return _failed("a SavedModel upload must be a zip or tar archive of the SavedModel folder")
    if any(name.rstrip("/").split("/")[-1] == "saved_model.pb" for name in names):
        return _passed(f"{kind} archive containing saved_model.pb")
    return _failed(f"the {kind} archive has no saved_model.pb")


def _check_tflite(head: bytes) -> FormatCheck:
    # A FlatBuffer: a 4-byte root offset, then the file identifier.
    if head[4:8] == b"TFL3":
        return _passed("TFLite FlatBuffer identifier TFL3")
    return _failed("no TFL3 FlatBuffer identifier at bytes 4-8")


# ModelProto's fields (onnx.proto) and their wire types: 0 varint, 2 length-delimited.
ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


class _EndOfWindow(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise _EndOfWindow
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _check_onnx(head: bytes, size: int) -> FormatCheck:
    """Walk the ModelProto's top-level fields in the header: each must be a known field with its wire
    type, and ir_version must be among them."""
    pos, seen = 0, set()
    try:
        while pos < len(head):
            tag, pos = _varint(head, pos)
            field, wire = tag >> 3, tag & 7
            if ONNX_FIELDS.get(field) != wire:
                return _failed(f"not an ONNX ModelProto (unexpected field {field}, wire type {wire})")
            seen.add(field)
            if wire == 0:
                _, pos = _varint(head, pos)
            else:
                length, pos = _varint(head, pos)
                if pos + length > size:
                    return _failed("not an ONNX ModelProto (a field runs past the end of the file)")
                pos += length
    except ValueError:
        return _failed("not an ONNX ModelProto (malformed protobuf)")
    except _EndOfWindow:
        if len(head) == size:  # the file itself ends inside a field
            return _failed("not an ONNX ModelProto (truncated)")
    if 1 in seen:
        return _passed("ONNX ModelProto header with ir_version")
    return _failed("not an ONNX ModelProto (no ir_version)")


def _check_pytorch(path: str, head: bytes) -> FormatCheck:
    names = _zip_names(path)
    if names is not None:
        if any(name.split("/")[-1] == "data.pkl" for name in names):
            return _passed("torch.save zip archive with data.pkl")
        return _failed("a zip archive without data.pkl is not a torch.save file")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _passed(f"legacy torch.save pickle (protocol {head[1]}); not unpickled")
    return _failed("neither a torch.save zip archive nor a legacy pickle")


def check_format(declared: str, path: str) -> FormatCheck:
    with open(path, "rb") as handle:
        return _check(declared, path, handle)


def _check(declared: str, path: str, handle: BinaryIO) -> FormatCheck:
    head = handle.read(HEADER_BYTES)
    handle.seek(0, 2)
    size = handle.tell()
    if declared == ModelFormat.TENSORFLOW_SAVED_MODEL:
        return _check_saved_model(path, head)
    if declared == ModelFormat.TFLITE:
        return _check_tflite(head)
    if declared == ModelFormat.ONNX:
        return _check_onnx(head, size)
    if declared == ModelFormat.PYTORCH:
        return _check_pytorch(path, head)
    return FormatCheck("skipped", f"no check for format {declared!r}")
