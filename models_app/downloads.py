"""Serving a version's file: streamed, with its sha256 as ETag, single byte ranges (206) and 304s, or a
redirect to a short-lived S3 URL when the registry is configured to step aside."""

from __future__ import annotations

import logging
import re

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.utils.http import content_disposition_header, parse_etags

from models_app import artifacts
from models_app.models import ModelVersion
from registry_site.errors import NotFound, RegistryError
from registry_site.storage import ByteRange

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, length) for a single satisfiable range; None to send the whole file (no header, or one
    this server does not slice, such as several ranges); "unsatisfiable" for a 416."""
    match = RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = min(int(last), size)
        return (size - length, length) if length > 0 else "unsatisfiable"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end - start + 1


class StoredFileUnavailable(RegistryError):
    """The version's stored file is missing or not the size its row records: the registry will not
    serve it as if it were whole. Not the client's fault and not a crash: 503, with the reason, and an
    error in the log for the operator (verify_artifacts finds every such file; see the README)."""

    status_code = 503


def _open_checked(version: ModelVersion, start: int, length: int) -> ByteRange:
    """The bytes to send, once the stored file's size was checked against its row: what can be checked
    without reading the file (a size is one stat, or the total in S3's Content-Range). A file whose
    content changed but not its size is found only by verify_artifacts, which re-hashes."""
    artifact = version.artifact
    assert artifact is not None
    what = f"The stored file of version '{version.version}' of model '{version.model.name}'"
    try:
        body = artifacts.open_range(artifact.storage_key, start, length)
    except FileNotFoundError:  # from either storage
        logger.error("stored file %s (sha256 %s) is missing", artifact.storage_key, artifact.sha256)
        raise StoredFileUnavailable(f"{what} is missing; the registry's operator must restore it.") from None
    if body.stored_size is not None and body.stored_size != artifact.size:
        body.close()
        logger.error(
            "stored file %s is %d bytes, its row records %d: not served",
            artifact.storage_key,
            body.stored_size,
            artifact.size,
        )
        raise StoredFileUnavailable(
            f"{what} is {body.stored_size} bytes on the storage, not the {artifact.size} bytes registered: it was "
            "changed outside the registry and is not served. The registry's operator must restore it."
        )
    return body


def file_response(request: HttpRequest, version: ModelVersion) -> HttpResponse:
    if not version.artifact_id:
        raise NotFound(f"Version '{version.version}' of model '{version.model.name}' has no file.")
    artifact = version.artifact
    etag = f'"{artifact.sha256}"'
    name = version.file_name or f"{version.model.name}-{version.version}"

    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x", and * matches any file.
    client_tags = parse_etags(request.META.get("HTTP_IF_NONE_MATCH", ""))
    if client_tags == ["*"] or etag in (tag.removeprefix("W/") for tag in client_tags):
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    redirect = artifacts.redirect_url(artifact.storage_key, file_name=name)
    if redirect is not None:
        return HttpResponseRedirect(redirect)

    wanted = None
    if_range = request.META.get("HTTP_IF_RANGE")
    if "HTTP_RANGE" in request.META and (if_range is None or if_range.strip() == etag):
        wanted = _parse_range(request.META["HTTP_RANGE"], artifact.size)
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{artifact.size}"
        return response
    start, length = wanted or (0, artifact.size)

    if request.method == "HEAD":
        # What a GET would answer, without opening the file (on S3 that would start a download) and
        # without a body (gunicorn would sendfile a file response's bytes even to a HEAD).
        response = HttpResponse()
        response["Content-Disposition"] = content_disposition_header(True, name)
    else:
        response = FileResponse(_open_checked(version, start, length), as_attachment=True, filename=name)
        response.block_size = BLOCK_SIZE
    if wanted:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{artifact.size}"
    response["Content-Length"] = str(length)
    response["Content-Type"] = "application/octet-stream"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["X-Checksum-Sha256"] = artifact.sha256
    return response
