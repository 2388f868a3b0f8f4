"""The errors a caller of the client library catches, each with a message a window can show as it is."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class WorkspaceError(Exception):
    """Anything the library reports; ``str(error)`` is a sentence for a person."""


def sentence(error: BaseException, doing: str) -> str:
    """What a person reads when ``doing`` failed: the library's sentence, never a stack trace."""
    if isinstance(error, WorkspaceError | ValueError):  # ValueError: an app's own sentence about the input
        return f"Could not {doing}: {error}"
    return f"Could not {doing}: something went wrong in the app ({type(error).__name__}: {error})."


class Unreachable(WorkspaceError):
    """The server did not answer: wrong address, server down, network cut."""


class NotSignedIn(WorkspaceError):
    """There is no session (never logged in, logged out, or the session was ended): log in again."""


class LoginRefused(WorkspaceError):
    """The server answered the login, but no: wrong password, throttled, disabled, or not allowed here."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: ``wrong_password``, ``throttled``, ``disabled`` or ``not_admin``.
        self.reason = reason
        #: For ``throttled``: seconds until the server accepts another try.
        self.retry_after = retry_after


class CallFailed(WorkspaceError):
    """An RPC answered with an error status other than the ones above."""

    def __init__(self, error: grpc.RpcError) -> None:
        self.code: grpc.StatusCode = error.code()
        self.details: str = error.details() or ""
        self.reason = error_reason(error)
        super().__init__(f"{self.details or self.code.name.lower()} ({self.code.name})")


def error_reason(error: grpc.RpcError) -> str:
    """The ``google.rpc.ErrorInfo`` reason of a Workspace error, or ``""``."""
    info = _detail(error, error_details_pb2.ErrorInfo)
    return info.reason if info is not None else ""


def error_metadata(error: grpc.RpcError) -> dict[str, str]:
    """The ``google.rpc.ErrorInfo`` metadata (e.g. ``last_event_id``), or ``{}``."""
    info = _detail(error, error_details_pb2.ErrorInfo)
    return dict(info.metadata) if info is not None else {}


def retry_after(error: grpc.RpcError) -> float | None:
    """Seconds from ``google.rpc.RetryInfo``, if the error carries one."""
    info = _detail(error, error_details_pb2.RetryInfo)
    if info is None:
        return None
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


def _detail(error: grpc.RpcError, kind):  # type: ignore[no-untyped-def]
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            return message
    return None
