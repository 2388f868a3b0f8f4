"""The shared client library of the Workspace desktop apps (and of scripts): a session that logs in and keeps
its token fresh, and server streams that survive outages. See docs/DASHBOARD.md ("The client library")."""

from .errors import CallFailed, LoginRefused, NotSignedIn, Unreachable, WorkspaceError, sentence
from .session import KEEPALIVE_OPTIONS, Session, open_channel
from .streams import (
    ResumableStream,
    StateChange,
    StreamState,
    activity_stream,
    backoff_delay,
    event_stream,
    stats_stream,
)
from .tokens import FileTokenStore, KeyringTokenStore, TokenStore, default_token_store

__all__ = [
    "KEEPALIVE_OPTIONS",
    "CallFailed",
    "FileTokenStore",
    "KeyringTokenStore",
    "LoginRefused",
    "NotSignedIn",
    "ResumableStream",
    "Session",
    "StateChange",
    "StreamState",
    "TokenStore",
    "Unreachable",
    "WorkspaceError",
    "activity_stream",
    "backoff_delay",
    "default_token_store",
    "event_stream",
    "open_channel",
    "sentence",
    "stats_stream",
]
