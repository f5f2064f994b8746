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

It also spreads connections over the workers (the second half of this file; run, accept,
spread_kept_alive and the signal handlers): gunicorn lets whichever worker is awake first take each new
connection, and a busy one, already running, often takes them all. tests/test_connection_spread.py checks it.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import selectors
import socket
import time
from functools import partial

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


# --- Spreading connections over the workers ---------------------------------------------------------
# Every worker watches the one listening socket and the first to look takes each new connection: often
# the worker already running, busy with the requests it has. Four keep-alive clients (CI jobs' SDK
# sessions, the benchmark's four) then share one worker's GIL while the other workers idle: registering
# versions from four clients went at 73-86 versions/s that way and 125-131 when they happened to spread
# (issue #12). So each worker publishes how many connections it holds in a page of memory shared with
# the others (mapped in the arbiter, before it forks them), and one that holds more than the least
# loaded worker leaves a new connection to the others for ACCEPT_HANDOFF seconds; if none took it by
# then, it takes it after all, so a worker that is stuck or stopped never keeps a client waiting longer.
# GUNICORN_ACCEPT_HANDOFF_MS=0 turns this off (gunicorn's own behaviour).
ACCEPT_HANDOFF = int(os.environ.get("GUNICORN_ACCEPT_HANDOFF_MS", "10")) / 1000
# A worker's event loop wakes at least once a second (gunicorn's select timeout) and publishes its count
# then: one that has not for longer is stuck or stopped, and the others no longer leave it anything.
STALE_AFTER = 2.5
_SLOTS = 64
_FREE = -1  # no worker has this slot
_NOT_ACCEPTING = 2**62  # a worker booting or stopping: never the least loaded
# Per worker slot, the connections it holds (signed 64-bit) and when it last said so (time.monotonic(),
# one clock for every process): MAP_SHARED | MAP_ANONYMOUS memory, so the forked workers share it.
_SHARED = mmap.mmap(-1, 16 * _SLOTS)
_HELD = memoryview(_SHARED)[: 8 * _SLOTS].cast("q")
_SEEN = memoryview(_SHARED)[8 * _SLOTS :].cast("d")
for _slot in range(_SLOTS):
    _HELD[_slot] = _FREE


def claim_slot() -> int | None:
    """In the arbiter, for a worker it is about to fork (a single thread: nothing races it)."""
    for slot in range(_SLOTS):
        if _HELD[slot] == _FREE:
            _HELD[slot] = _NOT_ACCEPTING
            return slot
    return None  # more workers than slots: the extra ones take connections as gunicorn would


def release_slot(worker) -> None:
    """In the arbiter, once a worker has exited (gunicorn.conf.py's child_exit)."""
    slot = getattr(worker, "slot", None)
    if slot is not None:
        _HELD[slot] = _FREE


class _SpreadingPoller:
    """The worker's selector, which also lets the worker put back a listening socket it stepped away
    from, and wakes it when that is due."""

    def __init__(self, selector, worker) -> None:
        self._selector = selector
        self._worker = worker

    def select(self, timeout=None):
        return self._selector.select(self._worker.before_select(timeout))

    def __getattr__(self, name):
        return getattr(self._selector, name)


class SlowClientThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slot = claim_slot() if ACCEPT_HANDOFF > 0 else None
        self._handed_off: dict = {}  # listening socket -> (its address, when to take it back)
        self._take_until = 0.0

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

    # --- Spreading connections (see ACCEPT_HANDOFF) ---------------------------------------------------

    def run(self):
        self.poller = _SpreadingPoller(self.poller, self)
        super().run()

    def before_select(self, timeout):
        """Each turn of the event loop: publish the connections held, take back the listening sockets
        whose hand-off time is over, and wake in time for the next."""
        if self.slot is None:
            return timeout
        now = time.monotonic()
        self._publish(now)
        if self._handed_off:
            for listener, (server, due) in list(self._handed_off.items()):
                if due <= now:
                    del self._handed_off[listener]
                    with self._lock:
                        self.poller.register(listener, selectors.EVENT_READ, partial(self.accept, server))
                    # Whatever is still waiting there, no other worker took in time: take it now.
                    self._take_until = now + ACCEPT_HANDOFF
                else:
                    timeout = min(timeout, due - now) if timeout is not None else due - now
        return timeout

    def accept(self, server, listener):
        if self.slot is not None and self._leave_to_others():
            with self._lock:
                self.poller.unregister(listener)
            self._handed_off[listener] = (server, time.monotonic() + ACCEPT_HANDOFF)
            return
        super().accept(server, listener)
        self._publish(time.monotonic())

    def _publish(self, now: float) -> None:
        slot = self.slot
        if slot is not None:
            _HELD[slot] = self.nr_conns if self.alive else _NOT_ACCEPTING
            _SEEN[slot] = now

    def _others(self):
        """The connections each other worker holds, of those that accept them and are not stuck."""
        now = time.monotonic()
        for slot in range(_SLOTS):
            held = _HELD[slot]
            if slot != self.slot and 0 <= held < _NOT_ACCEPTING and now - _SEEN[slot] < STALE_AFTER:
                yield held

    def spread_kept_alive(self, req) -> None:
        """Before a request (gunicorn.conf.py's pre_request): a worker that holds at least two connections
        more than another one that accepts them answers this request with `Connection: close`, and its
        client's next connection goes, by accept, to a less loaded worker. Keep-alive connections stay
        where they first landed, so without this a worker that was up first after a (re)start, or that
        took a burst, would keep serving most clients for as long as they stay connected."""
        if self.slot is None:
            return
        mine = self.nr_conns
        if any(held <= mine - 2 for held in self._others()):
            req.must_close = True

    def _leave_to_others(self) -> bool:
        if time.monotonic() < self._take_until:
            return False
        mine = self.nr_conns
        return any(held < mine for held in self._others())

    def handle_quit(self, sig, frame):
        self._stop_accepting()
        super().handle_quit(sig, frame)

    def handle_exit(self, sig, frame):
        self._stop_accepting()
        super().handle_exit(sig, frame)

    def _stop_accepting(self) -> None:
        if self.slot is not None:
            _HELD[self.slot] = _NOT_ACCEPTING
