"""Long-lived server streams that survive outages: reconnect with back-off, resume from the last id.

A ``ResumableStream`` runs one server-streaming RPC in a background thread. When the stream breaks it waits
(exponential back-off with full jitter, capped), reconnects, and asks for what came after the last id it
handed out, so the caller sees every stored event exactly once. Its state (``StreamState``) goes to
``on_state``; items go to ``on_item``. Both callbacks run in the stream's thread: a GUI hands them over to its
own thread (a queue polled with ``after``), never touching widgets from here.

    stream = activity_stream(session, on_item=print, on_state=print)
    stream.start()
    ...
    stream.stop()
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from workspace.v1 import activity_pb2, chat_pb2, monitoring_pb2

from .errors import CallFailed, NotSignedIn, Unreachable, error_reason, retry_after
from .session import Session

#: First back-off ceiling, seconds; it doubles with each failed attempt up to ``BACKOFF_CAP``.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class StreamState(enum.Enum):
    CONNECTING = "connecting"
    #: The server answered: items flow (for a resumable stream, the replay is under way or done).
    CONNECTED = "connected"
    #: The stream broke; waiting to try again.
    RECONNECTING = "reconnecting"
    #: Stopped for good: ``stop()`` was called, or the session ended (``error`` says why).
    STOPPED = "stopped"


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, rng=random.random) -> float:  # type: ignore[no-untyped-def]
    """Seconds to wait before reconnect ``attempt`` (1, 2, ...): uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog): clients that lost the same server
    at the same moment spread their reconnects over the whole window instead of arriving together.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return rng() * ceiling


@dataclass(frozen=True)
class StreamKind:
    """How one RPC is opened and how its responses are read."""

    name: str
    #: ``open(session_metadata, after_id) -> call``
    open: Callable[[tuple[tuple[str, str], ...], int], Any]
    #: ``position(response) -> (id, is_heartbeat)``: id 0 for items that are not stored (typing, ticks).
    position: Callable[[Any], tuple[int, bool]]
    resumable: bool = True


@dataclass(frozen=True)
class StateChange:
    state: StreamState
    #: Why the stream broke or stopped, for a person.
    error: str = ""
    #: With ``RECONNECTING``: the attempt about to be made (1, 2, ...), after a back-off wait.
    attempt: int = 0


class ResumableStream:
    """One server stream kept open in a background thread; see the module docstring."""

    def __init__(
        self,
        session: Session,
        kind: StreamKind,
        *,
        on_item: Callable[[Any], None],
        on_state: Callable[[StateChange], None] = lambda change: None,
        on_resync: Callable[[], None] = lambda: None,
        after_id: int = 0,
        deliver_heartbeats: bool = False,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self.session = session
        self.kind = kind
        self.on_item = on_item
        self.on_state = on_state
        self.on_resync = on_resync
        self.deliver_heartbeats = deliver_heartbeats
        self.backoff = backoff
        #: The id to resume after: the last stored item handed out, or a heartbeat's ``last_event_id``.
        self.position = after_id
        self.state = StreamState.STOPPED
        self._stop = threading.Event()
        self._call: Any = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._call_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: A rate limit's RetryInfo: the next attempt waits at least this long (seconds).
        self._not_before = 0.0

    def start(self) -> ResumableStream:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.kind.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the call and wait for the thread; ``on_state`` gets ``STOPPED``."""
        self._stop.set()
        with self._call_lock:
            if self._call is not None:
                self._call.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _set(self, change: StateChange) -> None:
        self.state = change.state
        self.on_state(change)

    def _run(self) -> None:
        attempt = 0
        self._set(StateChange(StreamState.CONNECTING))
        stopped_by = ""
        while not self._stop.is_set():
            try:
                if self._follow():
                    attempt = 0  # it was connected: the next break starts the back-off afresh
                error = "the server ended the stream"
            except NotSignedIn as ended:
                stopped_by = str(ended)
                break
            except (Unreachable, CallFailed) as unreachable:  # the token could not be refreshed just now
                error = str(unreachable)
            except grpc.RpcError as failure:
                if self._stop.is_set():
                    break
                decision = self._after_error(failure)
                if decision == "stop":
                    stopped_by = f"{failure.details()} ({failure.code().name})"
                    break
                if decision == "now":
                    continue
                error = f"{failure.details() or failure.code().name} ({failure.code().name})"
            if self._stop.is_set():
                break
            attempt += 1
            self._set(StateChange(StreamState.RECONNECTING, error, attempt))
            self._stop.wait(max(self.backoff(attempt), self._not_before))
            self._not_before = 0.0
        self._set(StateChange(StreamState.STOPPED, stopped_by))

    def _after_error(self, failure: grpc.RpcError) -> str:
        """``now`` (reconnect at once), ``later`` (back off) or ``stop``."""
        code, reason = failure.code(), error_reason(failure)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if reason == "SESSION_ENDED":
                return "stop"
            try:
                self.session.refresh_after_refusal(self._metadata)
            except NotSignedIn:
                return "stop"
            except Unreachable:
                return "later"
            return "now"
        if code == grpc.StatusCode.OUT_OF_RANGE and reason == "RESYNC_REQUIRED":
            self.position = 0
            self.on_resync()
            return "now"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason == "STREAM_TOO_SLOW":
            return "now"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason == "TOO_MANY_STREAMS":
            return "stop"  # a newer stream of the same person replaced this one: reopening would end that one
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason in ("RATE_LIMITED", "LOGIN_THROTTLED"):
            self._not_before = retry_after(failure) or 0.0  # not before the server says a token is back
            return "later"
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
            return "stop"
        return "later"

    def _follow(self) -> bool:
        """One connection: read until it ends; True if the server answered at least once."""
        self._metadata = self.session.metadata()
        call = self.kind.open(self._metadata, self.position if self.kind.resumable else 0)
        with self._call_lock:
            if self._stop.is_set():
                call.cancel()
                return False
            self._call = call
        answered = False
        try:
            for response in call:
                if not answered:
                    answered = True
                    self._set(StateChange(StreamState.CONNECTED))
                self._handle(response)
        finally:
            with self._call_lock:
                self._call = None
        return answered

    def _handle(self, response: Any) -> None:
        item_id, heartbeat = self.kind.position(response)
        if heartbeat:
            self.position = max(self.position, item_id)
            if self.deliver_heartbeats:
                self.on_item(response)
            return
        if item_id:
            if item_id <= self.position:
                return  # already handed out before a reconnect: never twice
            self.position = item_id
        self.on_item(response)


# --- the three streams -----------------------------------------------------------------------------------


def _event_position(response: chat_pb2.StreamEventsResponse) -> tuple[int, bool]:
    event = response.event
    if event.HasField("heartbeat"):
        return event.heartbeat.last_event_id, True
    return event.id, False


def _activity_position(response: activity_pb2.StreamActivityResponse) -> tuple[int, bool]:
    if response.HasField("heartbeat"):
        return response.heartbeat.last_event_id, True
    return response.entry.id, False


def event_stream(session: Session, **options: Any) -> ResumableStream:
    """``ChatService.StreamEvents``: the person's events; ``on_item`` gets ``StreamEventsResponse``."""
    kind = StreamKind(
        "events",
        lambda md, after: session.chat.StreamEvents(chat_pb2.StreamEventsRequest(after_event_id=after), metadata=md),
        _event_position,
    )
    return ResumableStream(session, kind, **options)


def activity_stream(session: Session, **options: Any) -> ResumableStream:
    """``ActivityService.StreamActivity`` (administrators): ``on_item`` gets ``StreamActivityResponse``."""
    kind = StreamKind(
        "activity",
        lambda md, after: session.activity.StreamActivity(
            activity_pb2.StreamActivityRequest(after_id=after), metadata=md
        ),
        _activity_position,
    )
    return ResumableStream(session, kind, **options)


def stats_stream(session: Session, interval: float | None = None, **options: Any) -> ResumableStream:
    """``MonitoringService.StreamStats`` (administrators): ticks are not stored, so nothing to resume."""

    def open_(md: tuple[tuple[str, str], ...], _after: int) -> Iterator[monitoring_pb2.StreamStatsResponse]:
        request = monitoring_pb2.StreamStatsRequest()
        if interval is not None:
            request.interval.FromMilliseconds(round(interval * 1000))
        return session.monitoring.StreamStats(request, metadata=md)

    kind = StreamKind("stats", open_, lambda response: (0, False), resumable=False)
    return ResumableStream(session, kind, **options)
