"""Receiving a model file: hashed chunk by chunk as it streams to a temporary file, never held in memory.

Two doors lead here: the seed's multipart form (Django calls HashingUploadHandler, installed globally in
settings.FILE_UPLOAD_HANDLERS) and a raw request body (`PUT .../file` with application/octet-stream,
read by receive_raw_body). Both hand the service a HashedUpload whose sha256 and size were computed on
the way in, so a stored file is never read back on the request path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import queue
import re
import threading
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParserError

from registry_site.errors import InvalidInput, PayloadTooLarge

CHUNK_SIZE = 1024 * 1024  # 1 MiB chunks parse 10-35% faster than Django's 64 KiB on this stack.
WRITEBACK_EVERY = 8 * 1024 * 1024


def _sync_file_range():
    """Linux's sync_file_range(2), which starts writing a range of a file to disk without waiting and
    without dropping it from the page cache; None where there is no such call."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return call


_SYNC_FILE_RANGE = _sync_file_range()
SYNC_FILE_RANGE_WRITE = 2


UNSAFE_FILE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+\-]")


def safe_file_name(name: str) -> str:
    """The client's file name, kept only as metadata: no folders, no control, bidi or shell characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return UNSAFE_FILE_NAME_CHARS.sub("_", base).lstrip(".")[:200] or "model-file"


class HashedUpload(TemporaryUploadedFile):
    """A finished upload on local disk with the sha256 and size of its bytes."""

    name: str
    size: int
    sha256: str


class _HashingSink:
    """Writes chunks to a temporary file beside the storage folder while hashing and counting them.

    Hashing and writing each cost about as much CPU as the other, so they run side by side: the
    caller hashes a chunk and hands it to this sink's writer thread, which writes it (both release the
    GIL) and starts the disk's write-back as it goes. At most QUEUE_DEPTH chunks wait in between, so
    memory stays bounded whatever the file's size. A file of one chunk (most model cards, configs, small
    models) is written by the caller when it finishes: starting a thread for it cost more than writing it."""

    QUEUE_DEPTH = 2

    def __init__(self, name: str | None, content_type: str | None, charset=None, extra=None) -> None:
        os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, exist_ok=True)
        self.file = HashedUpload(name or "upload", content_type or "application/octet-stream", 0, charset, extra)
        self.hasher = hashlib.sha256()
        self.size = 0
        self._chunks: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._first: bytes | memoryview | None = None  # held until a second chunk starts the writer
        self._writer: threading.Thread | None = None

    def write(self, chunk: bytes | memoryview) -> None:
        """Take a chunk. The caller must not change it until QUEUE_DEPTH + 1 more chunks were taken."""
        self.size += len(chunk)
        if self.size > settings.REGISTRY_MAX_UPLOAD_BYTES:
            self.discard()
            raise PayloadTooLarge(
                f"The file is larger than this registry accepts ({settings.REGISTRY_MAX_UPLOAD_BYTES} bytes).",
                field="file",
            )
        if self._error is not None:
            self.discard()
            raise self._error
        self.hasher.update(chunk)
        if self._writer is None:
            if self._first is None:
                self._first = chunk
                return
            self._writer = threading.Thread(target=self._write_chunks, name="upload-writer", daemon=True)
            self._writer.start()
            self._chunks.put(self._first)
            self._first = None
        self._chunks.put(chunk)

    def _write_chunks(self) -> None:
        written = written_back = 0
        try:
            while (chunk := self._chunks.get()) is not None:
                self.file.write(chunk)
                written += len(chunk)
                if _SYNC_FILE_RANGE is not None and written - written_back >= WRITEBACK_EVERY:
                    # Let the disk work while the rest streams in. Otherwise the kernel keeps the
                    # whole upload in memory (up to a tenth of RAM) and the final fsync waits for all
                    # of it: the upload would take receive time plus disk time, not the larger.
                    self.file.flush()
                    _SYNC_FILE_RANGE(self.file.fileno(), written_back, written - written_back, SYNC_FILE_RANGE_WRITE)
                    written_back = written
        except BaseException as exc:  # reported to the caller by write() or finish()
            self._error = exc
            while self._chunks.get() is not None:  # keep taking, so the caller never blocks
                pass

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._chunks.put(None)
            self._writer.join()

    def finish(self) -> HashedUpload:
        self._stop_writer()
        if self._error is not None:
            self.discard()
            raise self._error
        try:  # durable before any row can point to it
            if self._first is not None:
                self.file.write(self._first)
                self._first = None
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError:
            self.discard()
            raise
        self.file.seek(0)
        self.file.size = self.size
        self.file.sha256 = self.hasher.hexdigest()
        return self.file

    def discard(self) -> None:
        self._stop_writer()
        self.file.close()  # a NamedTemporaryFile: closing removes it


class IncompleteForm(MultiPartParserError, InvalidInput):
    """A multipart body that cannot be taken as the client meant it: cut off before its end, or with two
    files for one field. Django's parser would quietly register what arrived (a version without its file,
    or with the last of two files); this refuses the whole request instead. A MultiPartParserError, so
    Django answers 400 wherever it parses a form (the admin), and an InvalidInput naming the field for
    the API."""


class _BodyWatch:
    """The request body as Django's multipart parser reads it, counting the bytes and keeping the last
    few, so that once the parser is done we know whether the body was whole: all of its Content-Length,
    ending with the closing boundary. Costs a slice per chunk, never a pass over the data."""

    TAIL = 1024  # room for the closing boundary and a short epilogue after it

    def __init__(self, stream) -> None:
        self._stream = stream
        self.received = 0
        self.tail = b""

    def read(self, *args) -> bytes:
        data = self._stream.read(*args)
        self.received += len(data)
        self.tail = (self.tail + data[-self.TAIL :])[-self.TAIL :]
        return data

    def readline(self, *args) -> bytes:
        line = self._stream.readline(*args)
        self.received += len(line)
        self.tail = (self.tail + line[-self.TAIL :])[-self.TAIL :]
        return line

    def __getattr__(self, name):
        return getattr(self._stream, name)


class HashingUploadHandler(FileUploadHandler):
    chunk_size = CHUNK_SIZE

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self._file_fields: set[str] = set()
        self._expected = 0
        self._closing: bytes | None = None
        self._watch: _BodyWatch | None = None
        self._interrupted = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None) -> None:
        """Called once before the parser reads a byte: watch the body it is about to read."""
        self._expected = content_length
        self._closing = b"--" + boundary + b"--" if boundary else None
        request = self.request
        if request is not None and input_data is request and not request._read_started:
            # Django reads the body through request._stream (a LimitedStream over wsgi.input).
            self._watch = _BodyWatch(request._stream)
            request._stream = self._watch  # type: ignore[assignment]
        return None

    def new_file(self, field_name, *args, **kwargs) -> None:
        if field_name in self._file_fields:
            raise IncompleteForm(f"Send one file in '{field_name}', not several.", field=field_name)
        self._file_fields.add(field_name)
        super().new_file(field_name, *args, **kwargs)
        self.sink = _HashingSink(self.file_name, self.content_type, self.charset, self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        try:
            self.sink.write(raw_data)
        except BaseException:
            self.sink.discard()  # at once: Django's parser does not close a file it was still receiving
            raise

    def file_complete(self, file_size: int) -> HashedUpload:
        return self.sink.finish()

    def upload_interrupted(self) -> None:
        """Django's parser calls this when the body ended inside a file part (no boundary after it)."""
        sink = getattr(self, "sink", None)
        if sink is not None:
            sink.discard()
        self._interrupted = True

    def upload_complete(self) -> None:
        """The parser has read the whole body it was given; refuse it unless it was whole. Raising here
        makes Django's parser close (and so remove) every file it received."""
        watch = self._watch
        cut = self._interrupted
        if watch is not None:
            if self._expected and watch.received < self._expected:
                cut = True
            if self._closing is not None and self._closing not in watch.tail:
                cut = True
        if cut:
            received = f"{watch.received} of {self._expected} bytes arrived" if watch is not None else "it ended early"
            raise IncompleteForm(
                f"The upload was cut short: {received}, without the form's closing boundary; nothing was stored.",
                field="file",
            )


def receive_raw_body(request, *, file_name: str) -> HashedUpload:
    """Stream a raw (application/octet-stream) request body into a HashedUpload.

    The body must announce its length, and must deliver exactly that many bytes: a client that stops
    early gets a 400 and leaves nothing behind.
    """
    raw_length = request.META.get("CONTENT_LENGTH")
    if not raw_length:
        raise InvalidInput("A raw upload needs a Content-Length header.", field="file")
    expected = int(raw_length)  # RequestSizeLimitMiddleware has checked that it is a number in bounds
    sink = _HashingSink(file_name, request.META.get("CONTENT_TYPE"))
    # Under gunicorn, registry_site.gunicorn_body gives the body a readinto(): the bytes land in reused
    # buffers, with no copy and no allocation per chunk. Elsewhere (tests, runserver) plain reads.
    body = request.META.get("wsgi.input")
    # The sink may still be writing the last QUEUE_DEPTH + 1 chunks: cycle through enough buffers.
    buffers = itertools.cycle([memoryview(bytearray(CHUNK_SIZE)) for _ in range(_HashingSink.QUEUE_DEPTH + 2)])
    try:
        remaining = expected
        while remaining > 0:
            if hasattr(body, "readinto"):
                buffer = next(buffers)
                n = body.readinto(buffer[: min(CHUNK_SIZE, remaining)])
                chunk = buffer[:n]
            else:
                chunk = request.read(min(CHUNK_SIZE, remaining))
                n = len(chunk)
            if not n:
                break
            sink.write(chunk)
            remaining -= n
    except (OSError, PayloadTooLarge):
        sink.discard()
        raise
    if sink.size != expected:
        sink.discard()
        raise InvalidInput(f"The upload was cut short: {sink.size} of {expected} bytes arrived.", field="file")
    return sink.finish()


def receive_local_file(path: str) -> HashedUpload:
    """Stage a file from the server's own disk (management commands) exactly like an HTTP upload."""
    with open(path, "rb") as source:
        return receive_stream(source, file_name=os.path.basename(path))


def receive_stream(source: IO[bytes], *, file_name: str) -> HashedUpload:
    """Stage what a readable file object holds (a local file, a backup's copy) exactly like an HTTP upload."""
    sink = _HashingSink(file_name, "application/octet-stream")
    try:
        while chunk := source.read(CHUNK_SIZE):
            sink.write(chunk)
    except BaseException:
        sink.discard()
        raise
    return sink.finish()
