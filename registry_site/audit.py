"""The audit trail: every write appends an AuditEvent saying who, when, through which door, from which
address, to what, and what changed. Services call `record` inside their own transaction, so an event
exists exactly when its write committed.

The same call queues the webhook deliveries of the change (registry_site.webhooks.enqueue).

Who is acting is carried in a context variable: the request middleware sets it for the API and the
admin (the API's token authentication then names the user), and management commands set it to the
operating-system user who ran them.
"""

from __future__ import annotations

import getpass
import ipaddress
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from registry_site import webhooks
from registry_site.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    name: str
    via: str  # "api", "admin" or "command"
    address: str | None = None
    request_id: str = ""  # the request's X-Request-ID (registry_site/observability.py)


SYSTEM = Actor("system", "command")
_actor: ContextVar[Actor] = ContextVar("registry_actor", default=SYSTEM)


def current_actor() -> Actor:
    return _actor.get()


@contextmanager
def acting_as(actor: Actor):
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def name_user(username: str) -> None:
    """The request's user became known (token authentication runs inside the view)."""
    _actor.set(replace(_actor.get(), name=username))


@contextmanager
def acting_from_command():
    with acting_as(Actor(f"{getpass.getuser()} (shell)", "command")):
        yield


def record(
    action: str, *, object_type: str, object_repr: str, model_name: str = "", changes: dict[str, Any] | None = None
) -> AuditEvent:
    """Append the event, and queue the webhook deliveries it is published as (registry_site.webhooks):
    both in the caller's transaction, so they exist exactly when the change committed."""
    actor = current_actor()
    event = AuditEvent.objects.create(
        actor=actor.name[:150],
        via=actor.via,
        client_address=actor.address,
        request_id=actor.request_id,
        action=action,
        object_type=object_type,
        object_repr=object_repr[:255],
        model_name=model_name,
        changes=changes or {},
    )
    webhooks.enqueue(event)
    return event


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{field: [old, new]} for the fields whose value changed."""
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


def client_address(request) -> str | None:
    """The address of the client. Behind the reverse proxies named in FORWARDED_ALLOW_IPS, the nearest
    address in X-Forwarded-For that is not one of them; otherwise the connection's peer. Audit events and
    the throttles both use it, so one client behind the proxy cannot lock out the others."""
    peer = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not forwarded or not _is_trusted_proxy(peer):
        return peer
    hops = [part.strip() for part in forwarded.split(",")]
    for hop in reversed(hops):
        if not _valid_ip(hop):
            return peer
        if not _is_trusted_proxy(hop):
            return hop
    return hops[0]  # every hop is a trusted proxy: the first one is where the request came from


def _valid_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
        return True
    except ValueError:
        return False


def _is_trusted_proxy(address: str | None) -> bool:
    if not _valid_ip(address):
        return False
    ip = ipaddress.ip_address(address or "")
    return any(ip in network for network in settings.REGISTRY_TRUSTED_PROXIES)


class AuditActorMiddleware:
    """Names the actor of each request: the admin's session user, or 'anonymous' until the API's token
    authentication says who it is."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
        via = "admin" if request.path.startswith("/admin/") else "api"
        actor = Actor(name, via, client_address(request), getattr(request, "request_id", ""))
        with acting_as(actor):
            return self.get_response(request)
