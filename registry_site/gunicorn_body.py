"""gunicorn's request body, read in large pieces straight from the socket.

gunicorn's own `Body.read(n)` pulls 1 KiB at a time from a reader that receives 8 KiB per syscall and
copies every byte several times, so a multi-GB model upload spends its time on buffers, not on the disk.
registry_site/gunicorn.conf.py's pre_request hook gives every request with a Content-Length this reader
instead (`install`), before gunicorn builds the WSGI environ, so `wsgi.input` is it; models_app.uploads
then receives a raw body into reused buffers with `readinto`.

It reaches into gunicorn's private classes (Body, LengthReader, SocketUnreader) as they are in
gunicorn WRITTEN_FOR. Under any other version it steps aside, and gunicorn's own reader serves (correct,
slower); tests/test_gunicorn_body.py fails until someone re-reads gunicorn/http/body.py and
unreader.py against this module and moves WRITTEN_FOR.
"""

from __future__ import annotations

import io

import gunicorn
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader

from registry_site.body_rate import BodyDeadline

WRITTEN_FOR = "23.0.0"


def supported() -> bool:
    return gunicorn.__version__ == WRITTEN_FOR


def install(req) -> None:
    """From gunicorn's pre_request hook: read this request's body (when it has a Content-Length) with
    GunicornLengthBody. gunicorn then drains whatever the application left unread through it too."""
    reader = getattr(req.body, "reader", None)
    if supported() and isinstance(reader, LengthReader) and isinstance(reader.unreader, SocketUnreader):
        req.body = GunicornLengthBody(req.body)


class GunicornLengthBody:
    """For a body with a Content-Length: first whatever gunicorn already buffered, then one receive into
    the caller's buffer per read, keeping gunicorn's LengthReader count right, so keep-alive and
    pipelined requests still find the connection where gunicorn expects it."""

    def __init__(self, body) -> None:
        self._body = body
        self._reader = body.reader  # gunicorn.http.body.LengthReader: .length bytes still to come
        self._unreader = body.reader.unreader  # gunicorn.http.unreader.SocketUnreader: .buf, .sock
        self._deadline = BodyDeadline.from_settings()  # a client too slow to send its body gets 408

    @property
    def reader(self):
        """gunicorn's LengthReader, as on gunicorn's own Body: gunicorn.conf.py's post_request asks it how
        much of the body is still unread."""
        return self._reader

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._reader.length + len(self._body.buf.getvalue())
        buffer = bytearray(size)
        received = self.readinto(buffer)
        return bytes(memoryview(buffer)[:received])

    def readinto(self, buffer) -> int:
        """Fill `buffer` from the body (fewer bytes only at its end, or if the client stops sending)."""
        view = memoryview(buffer).cast("B")
        pending = self._body.buf.getvalue()
        if pending:  # bytes gunicorn's Body already buffered (after a readline)
            taken = pending[: len(view)]
            self._body.buf = io.BytesIO()
            self._body.buf.write(pending[len(taken) :])
            view[: len(taken)] = taken
            return len(taken)
        size = min(len(view), self._reader.length)
        if size <= 0:
            return 0
        buffered = self._unreader.buf.getvalue()
        if buffered:  # bytes received with the request's head
            taken = buffered[:size]
            self._unreader.buf = io.BytesIO()
            self._unreader.buf.write(buffered[len(taken) :])
            view[: len(taken)] = taken
            received = len(taken)
            self._deadline.count(received)
        else:
            received = 0
            while received < size:
                n = self._deadline.recv_into(self._unreader.sock, view[received:size])
                if n == 0:  # the client stopped sending
                    break
                received += n
        self._reader.length -= received
        return received

    def readline(self, size: int | None = None) -> bytes:
        return self._body.readline(size)

    def __iter__(self):
        return iter(self._body)
