"""WSGI entry point for gunicorn (`registry_site.wsgi:application`)."""

import io
import os

from django.core.wsgi import get_wsgi_application

from registry_site.body_rate import BodyDeadline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

django_application = get_wsgi_application()


class GunicornLengthBody:
    """gunicorn's request body, read in large pieces straight from the socket.

    gunicorn's own `Body.read(n)` pulls 1 KiB at a time from a reader that receives 8 KiB per syscall
    and copies every byte several times, so a multi-GB model upload spends its time on buffers, not on
    the disk. For a body with a Content-Length, this first returns whatever gunicorn already buffered,
    then receives into one buffer per read, and keeps gunicorn's LengthReader count right, so
    keep-alive and pipelined requests still find the connection where gunicorn expects it."""

    def __init__(self, body) -> None:
        self._body = body
        self._reader = body.reader  # gunicorn.http.body.LengthReader: .length bytes still to come
        self._unreader = body.reader.unreader  # gunicorn.http.unreader.SocketUnreader: .buf, .sock
        self._deadline = BodyDeadline.from_settings()  # a client too slow to send its body gets 408

    def read(self, size=-1):
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

    def readline(self, size=None):
        return self._body.readline(size)

    def __iter__(self):
        return iter(self._body)


def application(environ, start_response):
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    if type(reader).__name__ == "LengthReader" and hasattr(getattr(reader, "unreader", None), "sock"):
        environ["wsgi.input"] = GunicornLengthBody(body)
    return django_application(environ, start_response)
