"""The errors the registry's rules raise. Services raise them whichever front door called; the API turns
them into JSON (registry_site.api), the admin into messages, the commands into CommandError."""

from __future__ import annotations


class RegistryError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(RegistryError):
    status_code = 400


class NotFound(RegistryError):
    status_code = 404


class Forbidden(RegistryError):
    """The caller is known but lacks the role this act needs."""

    status_code = 403


class Conflict(RegistryError):
    """The request is well formed but the registry's state forbids it (exists already, is the default,
    is deployed, is archived...)."""

    status_code = 409


class PayloadTooLarge(RegistryError):
    status_code = 413


class RequestTimeout(RegistryError, TimeoutError):
    """The client sent its request body too slowly (registry_site.body_rate). Also a TimeoutError, so
    code that already cleans up after a client that went away (an OSError) cleans up after this too."""

    status_code = 408
