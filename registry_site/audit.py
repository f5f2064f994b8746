"""The audit trail: every write appends an AuditEvent saying who, when, through which door, from which
address, to what, and what changed. Services call `record` inside their own transaction, so an event
exists exactly when its write committed.

Who is acting is carried in a context variable: the request middleware sets it for the API and the
admin (the API's token authentication then names the user), and management commands set it to the
operating-system user who ran them.
"""
from __future__ import annotations

import getpass
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from registry_site.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    name: str
    via: str  # "api", "admin" or "command"
    address: str | None = None


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


def record(action: str, *, object_type: str, object_repr: str, model_name: str = "", changes: dict[str, Any] | None = None) -> AuditEvent:
    actor = current_actor()
    return AuditEvent.objects.create(
        actor=actor.name[:150],
        via=actor.via,
        client_address=actor.address,
        action=action,
        object_type=object_type,
        object_repr=object_repr[:255],
        model_name=model_name,
        changes=changes or {},
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{field: [old, new]} for the fields whose value changed."""
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


class AuditActorMiddleware:
    """Names the actor of each request: the admin's session user, or 'anonymous' until the API's token
    authentication says who it is."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
        via = "admin" if request.path.startswith("/admin/") else "api"
        with acting_as(Actor(name, via, request.META.get("REMOTE_ADDR"))):
            return self.get_response(request)
