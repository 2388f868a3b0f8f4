"""The domain's own exceptions. ``server.api.errors`` maps each to one gRPC status code."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a caller is meant to see; the message is shown to them.

    ``reason`` is a stable UPPER_SNAKE_CASE word that clients may branch on
    (sent as ``google.rpc.ErrorInfo.reason``); without one, the status code's
    name is used.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: ``field`` is a path such as ``user.username``."""

    field: str
    reason: str


class InvalidInput(DomainError):
    """The request is malformed; carries one violation per bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.reason}" for v in violations))

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidInput:
        return cls([FieldViolation(field, reason)])


class Unauthenticated(DomainError):
    """The caller is not who they claim, or their credentials are no longer valid."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know it exists)."""


class AlreadyExists(DomainError):
    """Creating this would duplicate something unique. ``violations`` (optional) name the fields that clash
    (sent as ``google.rpc.BadRequest``, as for ``InvalidInput``), e.g. each serial number of a batch."""

    def __init__(self, message: str, *, reason: str | None = None, violations: list[FieldViolation] | None = None):
        super().__init__(message, reason=reason)
        self.violations = violations or []


class FailedPrecondition(DomainError):
    """The request is valid but the system is not in a state that allows it."""


class Aborted(DomainError):
    """A concurrent change got there first (a stale etag): read again, then retry."""


class Throttled(DomainError):
    """Too many attempts; retry after ``retry_after`` seconds. ``metadata`` (optional) says which limit, for
    machines (sent in ``google.rpc.ErrorInfo.metadata``)."""

    def __init__(
        self, message: str, retry_after: float, *, reason: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        self.metadata = metadata or {}


class TooManyStreams(DomainError):
    """A person opened more streams than they may have open at once: their oldest one is ended with this."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="TOO_MANY_STREAMS")


class Unavailable(DomainError):
    """This replica cannot serve it now (it is stopping): retry, here later or on another replica."""


class Validator:
    """Collects every violation of a request, so the caller learns all of them at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, reason: str) -> None:
        self.violations.append(FieldViolation(field, reason))

    def check(self, ok: bool, field: str, reason: str) -> bool:
        if not ok:
            self.add(field, reason)
        return ok

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidInput(self.violations)
