"""Moving model files: hashing, streaming an upload from disk, and a download that verifies its sha256
and resumes where a broken one stopped. Memory stays flat: every byte passes through one 1 MiB
buffer, whatever the file's size."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from mvr._http import Http
from mvr.errors import ChecksumMismatch, MvrError, TransportError

log = logging.getLogger("mvr")

CHUNK = 1024 * 1024
# What a broken download raises while its body streams in (requests wraps urllib3's errors in these).
BROKEN_STREAM = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


def progress_bar(total: int, description: str, enabled: bool) -> tqdm:
    """Bytes done, rate and time left, on stderr; a disabled bar costs nothing and prints nothing."""
    return tqdm(
        total=total,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.25,
        leave=False,
    )


def sha256_of(path: Path, *, progress: bool = False, description: str = "hashing") -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle, progress_bar(path.stat().st_size, description, progress) as bar:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            bar.update(n)
    return digest.hexdigest()


class FileBody:
    """A file as a request body: iterated in 1 MiB chunks, with a length, so the request announces
    Content-Length (the registry's raw upload needs it) and nothing is held in memory. Iterating again
    (a retry) starts over from the first byte."""

    def __init__(self, path: Path, size: int, bar: tqdm) -> None:
        self.path = path
        self.size = size
        self.bar = bar

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        self.bar.reset(total=self.size)
        sent = 0
        with open(self.path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                sent += len(chunk)
                if sent > self.size:
                    break
                yield chunk
                self.bar.update(len(chunk))
        if sent != self.size:
            # The announced length is wrong now: the registry will see a short or long body and refuse
            # it; say why here.
            raise MvrError(f"{self.path} changed size while it was being uploaded; nothing was stored.")


@dataclass
class Download:
    path: Path
    sha256: str
    size: int
    fetched: int  # bytes received over the network by this call
    resumed_from: int  # bytes of an earlier, broken download that were kept (0: started afresh)
    outcome: str  # "downloaded", "resumed" or "present" (the file was already there, whole)


def partial_path(destination: Path, sha256: str) -> Path:
    """Where a download is assembled: beside the destination (so the final rename stays on one file
    system), named after the content, so a resumed download can only continue the same file."""
    return destination.with_name(f".{destination.name}.{sha256[:16]}.part")


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest, size


def download(
    http: Http,
    url_path: str,
    destination: Path,
    *,
    sha256: str,
    size: int,
    progress: bool = False,
) -> Download:
    """Download to `destination`, verified against `sha256`: bytes go to a partial file, which is
    renamed into place only once its digest matches. A broken transfer resumes with a Range request
    (If-Range on the ETag, which is the sha256), in this call while retries remain, or in a later call
    that finds the partial file."""
    if (
        destination.is_file()
        and destination.stat().st_size == size
        and _hash_existing(destination)[0].hexdigest() == sha256
    ):
        return Download(destination, sha256, size, fetched=0, resumed_from=0, outcome="present")

    part = partial_path(destination, sha256)
    digest, have = _hash_existing(part) if part.exists() else (hashlib.sha256(), 0)
    if have > size:  # not ours to trust
        part.unlink()
        digest, have = hashlib.sha256(), 0
    resumed_from = have
    fetched = 0
    attempt = 0
    with progress_bar(size, destination.name, progress) as bar, open(part, "ab") as out:
        bar.update(have)
        while have < size:
            response = _get_file(http, url_path, have, sha256)
            try:
                if have and not _continues_at(response, have):
                    # The whole file is coming instead (or the range cannot be served): start over.
                    if response.status_code != 200:
                        response.close()
                        response = _get_file(http, url_path, 0, sha256)
                    log.info("the registry sent the whole file; restarting the download from byte 0")
                    out.truncate(0)
                    out.seek(0)
                    digest, have, resumed_from = hashlib.sha256(), 0, 0
                    bar.reset(total=size)
                _check_served_digest(response, sha256)
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    have += len(chunk)
                    fetched += len(chunk)
                    bar.update(len(chunk))
                    if have > size:
                        break
            except BROKEN_STREAM as exc:
                out.flush()
                if attempt >= http.retries:
                    raise TransportError(
                        f"The download broke off at byte {have} of {size} ({exc.__class__.__name__}); "
                        "run the same command again to resume it."
                    ) from exc
                delay = http.retry_delay(attempt, None)
                attempt += 1
                log.warning("download broke off at byte %d of %d; resuming in %.1f s", have, size, delay)
                http.sleep(delay)
                continue
            finally:
                response.close()
            if have < size:  # the answer ended early without an error: treat it as broken
                if attempt >= http.retries:
                    raise TransportError(f"The download ended at byte {have} of {size}; run again to resume it.")
                attempt += 1
        out.flush()
        os.fsync(out.fileno())

    if have != size or digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"The downloaded file's sha256 is {digest.hexdigest()} ({have} bytes), not the registry's recorded "
            f"{sha256} ({size} bytes); it was deleted. The registry's copy may be damaged: ask its operator to "
            "run manage.py verify_artifacts."
        )
    os.replace(part, destination)
    return Download(
        destination,
        sha256,
        size,
        fetched=fetched,
        resumed_from=resumed_from,
        outcome="resumed" if resumed_from else "downloaded",
    )


REDIRECTS = (301, 302, 303, 307, 308)


def _get_file(http: Http, url_path: str, offset: int, sha256: str) -> requests.Response:
    """The file from `offset` on. The registry may hand the download to its storage with a redirect to a
    presigned S3 URL: that URL carries its own authorisation (the registry's token must not go there), and
    its ETag is S3's, not the sha256, so the range is asked for without If-Range: the object's key is
    its sha256, so its bytes cannot change."""
    headers = {"Range": f"bytes={offset}-", "If-Range": f'"{sha256}"'} if offset else {}
    response = http.request(
        "GET", url_path, headers=headers, stream=True, ok_statuses=(416, *REDIRECTS), follow_redirects=False
    )
    if response.status_code not in REDIRECTS:
        return response
    location = requests.compat.urljoin(response.url, response.headers["Location"])
    response.close()
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    return http.request("GET", location, headers=headers, stream=True, ok_statuses=(416,), anonymous=True)


def _continues_at(response: requests.Response, offset: int) -> bool:
    """True when the answer is the rest of the file from `offset` on (206 with a matching Content-Range)."""
    content_range = response.headers.get("Content-Range", "")
    return response.status_code == 206 and content_range.startswith(f"bytes {offset}-")


def _check_served_digest(response: requests.Response, sha256: str) -> None:
    """The registry names the file's sha256 in X-Checksum-Sha256 (an S3 presigned redirect does not, and
    its ETag is S3's own): a different name means the wrong file is coming, so stop before reading it."""
    served = response.headers.get("X-Checksum-Sha256")
    if served and served.lower() != sha256.lower():
        raise ChecksumMismatch(f"The registry is serving a file with sha256 {served}, not the version's {sha256}.")
