"""What can go wrong, as exceptions that carry the command line's exit code.

Exit codes (the `mvr` command returns them; scripts and CI gates test them):

    0  success
    1  error: the registry refused the request (400, 404, 409...), the network failed after every
       retry, a downloaded file did not match its checksum...
    2  usage: a bad command line, or input the client can refuse before sending anything
    3  refused by a promotion policy: a deploy answered 409 with a policy evaluation, or a
       `promote --dry-run` whose evaluation failed
    4  not allowed: the token is missing, unknown, expired (401) or lacks the role or scope (403)
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_POLICY = 3
EXIT_NOT_ALLOWED = 4


class MvrError(Exception):
    """Base class: every error the client raises on purpose."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(MvrError):
    """Input that is wrong before anything is sent (a malformed --metric, a missing file...)."""

    exit_code = EXIT_USAGE


class TransportError(MvrError):
    """The registry could not be reached, or kept failing, after every retry."""


class ChecksumMismatch(MvrError):
    """Bytes that are not the ones the registry recorded: nothing is kept."""


class UnsupportedByServer(MvrError):
    """The registry this client talks to does not offer a feature yet (custom metrics, tags...)."""


class ApiError(MvrError):
    """The registry answered with an error. `status` is the HTTP status, `body` its JSON (or None),
    `errors` the per-field problems it named."""

    def __init__(self, message: str, *, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.errors: dict[str, list[str]] = body.get("errors", {}) if isinstance(body, dict) else {}


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class NotAllowed(ApiError):
    exit_code = EXIT_NOT_ALLOWED


class PolicyRefused(ApiError):
    """A deploy broke a promotion policy (or a dry run says it would). `checks` lists every rule."""

    exit_code = EXIT_POLICY

    def __init__(self, message: str, *, status: int, body: Any = None, checks: list[dict] | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.checks = checks or []


class VersionMismatch(MvrError):
    """`push` found the version already registered, with another file or other metadata."""

    def __init__(self, message: str, *, differences: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.differences = differences  # field -> (registry's value, this push's value)
