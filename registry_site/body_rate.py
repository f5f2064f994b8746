"""A request body must keep arriving: after a grace period, at a minimum average rate, or 408.

The gunicorn worker (registry_site.gunicorn_worker) already answers 408 to a client whose headers, or the start of
whose body, are late. The rest of a body is read by a thread straight from the socket, so this checks it,
as it arrives. The rule is Apache mod_reqtimeout's
`body=GRACE,MinRate=RATE`: the deadline is GRACE seconds after the body was first read, and moves one
second later for every RATE bytes received. An upload at normal speed is never cut however large, and a
fast one may pause, but a client trickling a few bytes a second holds a gunicorn thread for GRACE seconds
at most.
"""

from __future__ import annotations

import socket
import time

from django.conf import settings

from registry_site.errors import RequestTimeout


class BodyDeadline:
    def __init__(self, *, grace: float, min_rate: float) -> None:
        self.grace = grace
        self.min_rate = min_rate
        self.started = time.monotonic()
        self.received = 0

    @classmethod
    def from_settings(cls) -> BodyDeadline:
        return cls(grace=settings.REGISTRY_BODY_GRACE, min_rate=settings.REGISTRY_BODY_MIN_RATE)

    def remaining(self) -> float:
        return self.started + self.grace + self.received / self.min_rate - time.monotonic()

    def count(self, received: int) -> None:
        """Bytes that arrived some other way (with the request's head)."""
        self.received += received

    def recv_into(self, sock: socket.socket, view: memoryview) -> int:
        """sock.recv_into(view), waiting no later than the deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise self.too_slow()
        sock.settimeout(remaining)
        try:
            received = sock.recv_into(view, len(view))
        except TimeoutError:
            raise self.too_slow() from None
        finally:
            sock.settimeout(None)  # gunicorn writes the response on a blocking socket
        self.received += received
        return received

    def too_slow(self) -> RequestTimeout:
        return RequestTimeout(
            f"The request body arrived too slowly: {self.received} bytes in {time.monotonic() - self.started:.0f} s. "
            f"After the first {self.grace:g} s a body must arrive at {self.min_rate:g} bytes/s on average."
        )
