"""The one exception tree of testgate.

    TestgateError
    ├── NotFound            a resource does not exist, or the caller may not know it exists
    ├── Conflict            a resource already exists, or is in a state that forbids the change
    ├── InvalidInput        the caller sent something malformed; ``errors`` names each field path
    ├── PermissionDenied    authenticated, but the effective permission is too low
    ├── Unauthenticated     no credentials, or credentials that are invalid, expired or revoked
    ├── ConfirmationRequired (→ ConfirmationPending) / ConfirmationRefused   no "yes" (yet)
    ├── LimitExceeded       a size or count bound was hit
    ├── RunnerError         the executor could not start or control an execution
    ├── StorageUnavailable  the artifact store could not be reached, or refused the request
    └── AuditFailure        the audit event could not be written, so the operation did not happen

Services raise these; every transport converts them in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class TestgateError(Exception):
    """Base of every domain error. ``code`` is a stable machine-readable name."""

    __test__ = False
    message: str
    code: ClassVar[str] = "error"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class NotFound(TestgateError):
    code: ClassVar[str] = "not_found"


@dataclass
class Conflict(TestgateError):
    code: ClassVar[str] = "conflict"


def validation_message(error: Any) -> str:
    """pydantic's message for one of a ``ValidationError``'s errors, in the validator's own words: without
    the "Value error, " pydantic puts before a ``ValueError``'s text, and "unknown field" for an extra one."""
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error.get("msg", "")).removeprefix("Value error, ")


@dataclass
class FieldError:
    """One validation problem: ``path`` is like ``spec.steps[1].timeout``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class InvalidInput(TestgateError):
    code: ClassVar[str] = "invalid_input"
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        return self.message + "\n" + "\n".join(f"  {e}" for e in self.errors)


@dataclass
class PermissionDenied(TestgateError):
    code: ClassVar[str] = "permission_denied"


@dataclass
class Unauthenticated(TestgateError):
    code: ClassVar[str] = "unauthenticated"


@dataclass
class ConfirmationRequired(TestgateError):
    code: ClassVar[str] = "confirmation_required"


@dataclass
class ConfirmationPending(ConfirmationRequired):
    """The question was handed to the client; the call ends now and resumes with the answer."""

    code: ClassVar[str] = "confirmation_pending"


@dataclass
class ConfirmationRefused(TestgateError):
    code: ClassVar[str] = "confirmation_refused"


@dataclass
class LimitExceeded(TestgateError):
    code: ClassVar[str] = "limit_exceeded"


@dataclass
class RunnerError(TestgateError):
    code: ClassVar[str] = "runner_error"


@dataclass
class StorageUnavailable(TestgateError):
    code: ClassVar[str] = "storage_unavailable"


@dataclass
class AuditFailure(TestgateError):
    code: ClassVar[str] = "audit_failure"
