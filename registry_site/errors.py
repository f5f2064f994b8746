"""The errors the registry's rules raise. Services raise them whichever front door called; the API turns
them into JSON (registry_site.exceptions), the admin into messages or form errors
(registry_site.admin_base), the commands into CommandError (registry_site.commands)."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # The problem per field ({field: [message, ...]}), when it belongs to named fields.
        self.errors = errors if errors is not None else ({field: [message]} if field else None)

    def body(self) -> dict[str, Any]:
        """What the API's JSON answer carries besides "detail" and "errors"."""
        return {}


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


class PolicyRefused(Conflict):
    """A deploy broke its target's promotion policy (deployments_app.policies): a 409 whose body lists
    every rule evaluated ("checks": rule, passed, expected, seen, detail), so a CI gate can show them."""

    def __init__(self, message: str, *, checks: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.checks = checks

    def body(self) -> dict[str, Any]:
        return {"allowed": False, "checks": self.checks}


class PayloadTooLarge(RegistryError):
    status_code = 413


class Unprocessable(RegistryError):
    """Well formed, but contradicts what the registry recorded for it: an Idempotency-Key that already
    answered a request with another body (registry_site.idempotency)."""

    status_code = 422


def flatten(detail: Any) -> str:
    """Field errors as one sentence: "accuracy: Must be between 0 and 1.; format: ..."."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = flatten(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(flatten(item) for item in detail)
    return str(detail)


def invalid_choice_message(choices, placeholder: str) -> str:
    """The message for a value outside `choices`, naming the allowed ones; `placeholder` is where the
    framework at hand puts the refused value ("{input}" for DRF, "%(value)s" for Django)."""
    allowed = ", ".join(value for value, _ in choices)
    return f'"{placeholder}" is not a valid choice; use one of: {allowed}.'


class RequestTimeout(RegistryError, TimeoutError):
    """The client sent its request body too slowly (registry_site.body_rate). Also a TimeoutError, so
    code that already cleans up after a client that went away (an OSError) cleans up after this too."""

    status_code = 408
