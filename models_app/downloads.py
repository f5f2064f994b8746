"""Serving a version's file: streamed, with its sha256 as ETag, single byte ranges (206) and 304s, or a
redirect to a short-lived S3 URL when the registry is configured to step aside."""

from __future__ import annotations

import re

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.utils.http import content_disposition_header, parse_etags

from models_app import artifacts
from models_app.models import ModelVersion
from registry_site.errors import NotFound

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
        response = FileResponse(
            artifacts.open_range(artifact.storage_key, start, length), as_attachment=True, filename=name
        )
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
