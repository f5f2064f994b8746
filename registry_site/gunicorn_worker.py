"""gunicorn's threaded worker, changed to hold slow clients in its event loop instead of in its threads.

gunicorn's gthread worker hands a connection to one of its few threads as soon as the first byte
arrives, and that thread then waits for the rest of the request however slowly it comes: twenty clients
trickling their headers or bodies held every thread and the registry stopped answering. This worker
keeps a connection in the event loop, where waiting costs nothing, until its request head and the first
part of its body (all of a small body, FIRST_BODY_BYTES of a large one) have arrived; only then does a
thread take it, with those bytes already read. A client whose head is not complete within
REGISTRY_HEADER_TIMEOUT, or whose first body bytes are not there REGISTRY_BODY_GRACE seconds after its
head, gets 408 from the event loop and never reaches Django. The rest of a body streams straight from
the socket to the upload code as before, checked against a minimum rate by registry_site/body_rate.py.

Why not a reverse proxy in front (what gunicorn's documentation suggests): on this project's 2-core
benchmark machine HAProxy cost a quarter of the download speed and nginx's request buffering nearly half
the upload speed; the README's "Serving slow clients" section has the figures. The worker overrides three
methods of gunicorn's ThreadWorker (init_process, on_client_socket_readable, murder_keepalived; gunicorn
is pinned in requirements.txt), and tests/test_slow_clients.py checks the behaviour against the real
server.
"""

from __future__ import annotations

import json
import re
import socket
import time

from gunicorn.workers.gthread import ThreadWorker

HEAD_END = b"\r\n\r\n"
# What must arrive with a head before a thread is spent on a request with a body: as much as HAProxy's
# `wait-for-body` would hold in its default buffer.
FIRST_BODY_BYTES = 16 * 1024
# gunicorn refuses a head with a header over 8190 bytes or more than 100 headers; one this long and still
# unfinished is answered 431 here rather than handed to a thread that would wait for its end.
MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 5
CONTENT_TYPE = re.compile(rb"\r\ncontent-type[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)[ \t]*(?=\r\n)", re.IGNORECASE)
CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue[ \t]*(?=\r\n)", re.IGNORECASE)


def error_response(status: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


TIMEOUT = error_response(
    "408 Request Timeout",
    "The request was not received in time: its headers, or the start of its body, came too slowly.",
)
HEAD_TOO_LARGE = error_response("431 Request Header Fields Too Large", "The request's headers are too large.")


class _Arriving:
    """A request still arriving in the event loop (or, `discard`, the rest of a body nobody will read)."""

    __slots__ = ("data", "deadline", "head_seen", "discard")

    def __init__(self, deadline: float, discard: bool = False) -> None:
        self.data = b""
        self.deadline = deadline
        self.head_seen = False
        self.discard = discard


class SlowClientThreadWorker(ThreadWorker):
    def init_process(self):
        self._arriving: dict = {}
        self._lingering: set = set()
        self._limits = None
        super().init_process()

    def linger(self, sock) -> None:
        """Called (from a request's thread) when a response was sent before its request's body was read
        (401, 413, 408...): send EOF after the response, and let the event loop read and drop whatever
        the client still sends until it stops, for LINGER_SECONDS at most, rather than a thread reading
        it as the start of the next request, however slowly it comes. (Closing at once could lose the
        response: a close with unread data sends the client a reset.)"""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            self._lingering.add(sock)

    def limits(self) -> tuple[float, float]:
        """(header timeout, body grace), from Django's settings, loaded with the application."""
        if self._limits is None:
            from django.conf import settings

            self._limits = (settings.REGISTRY_HEADER_TIMEOUT, settings.REGISTRY_BODY_GRACE)
        return self._limits

    def on_client_socket_readable(self, conn, client):
        with self._lock:
            arriving = self._arriving.get(conn)
            if arriving is None:
                if conn.initialized:  # a kept-alive connection starting its next request
                    try:
                        self._keep.remove(conn)
                    except ValueError:  # closed meanwhile by the keep-alive timeout
                        return
                if conn.sock in self._lingering:
                    self._lingering.discard(conn.sock)
                    arriving = _Arriving(time.monotonic() + LINGER_SECONDS, discard=True)
                else:
                    arriving = _Arriving(time.monotonic() + self.limits()[0])
                self._arriving[conn] = arriving
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn)
            return
        if arriving.discard:
            return
        arriving.data += data
        if arriving.data.find(HEAD_END) < 0 and len(arriving.data) > MAX_HEAD_BYTES:
            self._send(conn, HEAD_TOO_LARGE)
            self._drop(conn)
            return
        if self._complete_enough(conn, arriving):
            with self._lock:
                self.poller.unregister(client)
                del self._arriving[conn]
            conn.init()  # makes the parser, whose reader then starts with what arrived here
            conn.parser.unreader.unread(arriving.data)
            self.enqueue_req(conn)

    def _complete_enough(self, conn, arriving: _Arriving) -> bool:
        """Whether the head, and the start of any body, are here (or the head is too long to wait for)."""
        buffered = conn.parser.unreader.buf.getvalue() if conn.parser is not None else b""
        data = buffered + arriving.data  # a pipelined request may have begun in gunicorn's buffer
        end = data.find(HEAD_END)
        if end < 0:
            return False
        head = data[: end + 2]
        length_match = CONTENT_LENGTH.search(head)
        length = int(length_match.group(1)) if length_match else None
        chunked = CHUNKED.search(head) is not None
        if not chunked and not length:
            return True
        if length is not None and self._refused_unread(head, length):
            return True  # the application answers 413 without reading the body: no need to wait for it
        if not arriving.head_seen:
            arriving.head_seen = True
            arriving.deadline = time.monotonic() + self.limits()[1]
            if EXPECT_CONTINUE.search(head) and EXPECT_CONTINUE.search(arriving.data):
                # The client waits for this before sending its body. Answered here, and taken out of
                # the head so that gunicorn does not send it a second time.
                arriving.data = EXPECT_CONTINUE.sub(b"", arriving.data, count=1)
                self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                return self._complete_enough(conn, arriving)  # part of the body may be here already
        body = data[end + len(HEAD_END) :]
        if chunked:
            return len(body) >= FIRST_BODY_BYTES or b"0\r\n\r\n" in body
        return len(body) >= min(length or 0, FIRST_BODY_BYTES)

    def _refused_unread(self, head: bytes, length: int) -> bool:
        from registry_site.middleware import body_over_limit

        content_type = CONTENT_TYPE.search(head)
        return body_over_limit(content_type.group(1).decode("latin-1") if content_type else "", length) is not None

    def murder_keepalived(self):
        """Called by the event loop about once a second: also answer 408 to requests arriving too slowly."""
        super().murder_keepalived()
        now = time.monotonic()
        late = [(conn, arriving) for conn, arriving in list(self._arriving.items()) if arriving.deadline <= now]
        for conn, arriving in late:
            if not arriving.discard:
                self._send(conn, TIMEOUT)
            self._drop(conn)
        with self._lock:  # forget the lingering sockets gunicorn closed without keeping them alive
            self._lingering = {sock for sock in self._lingering if sock.fileno() != -1}

    def _send(self, conn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # a few hundred bytes: fits the socket's buffer, never blocks
        except OSError:
            pass

    def _drop(self, conn) -> None:
        with self._lock:
            self._arriving.pop(conn, None)
            self._lingering.discard(conn.sock)
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        self.nr_conns -= 1
        conn.close()
