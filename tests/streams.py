"""Reading a ``StreamEvents`` call in a test: a background thread, a queue, timeouts, ordering checks."""

from __future__ import annotations

import queue
import threading
import time

import grpc
from workspace.v1 import chat_pb2

from .api import Client

#: The longest any single wait on a stream may take before the test fails.
WAIT = 10.0
#: The deadline of every stream call: no stream outlives a hung test for long.
STREAM_DEADLINE = 120.0
_END = object()


class Stream:
    """One ``StreamEvents`` call, read in a background thread.

    Checks the contract's ordering on every item it hands out: heartbeats and typing have id 0, and a stored
    event's id is larger than every id taken before it, event or heartbeat (a heartbeat promises that
    everything up to its ``last_event_id`` has been sent; typing is never stored and does not move it).
    ``position`` is where a client that handled everything taken so far resumes from.
    """

    #: What most tests do not look at: presence changes of the people involved, and typing.
    BACKGROUND = ("presence_changed", "typing")

    def __init__(self, client: Client, after_event_id: int = 0, ignore: tuple[str, ...] = BACKGROUND) -> None:
        self.ignore = ignore
        request = chat_pb2.StreamEventsRequest(after_event_id=after_event_id)
        self.call = client.chat.StreamEvents(request, metadata=client.md, timeout=STREAM_DEADLINE)
        self.position = after_event_id
        self._items: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._items.put(response.event)
        except grpc.RpcError as error:
            self._items.put(error)
        else:
            self._items.put(_END)

    def _take(self, timeout: float) -> object:
        try:
            return self._items.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing arrived on the stream within {timeout}s") from None

    def _check(self, event: chat_pb2.Event) -> chat_pb2.Event:
        assert event.create_time.seconds > 0, event
        if event.HasField("heartbeat"):
            assert event.id == 0, event
            assert event.heartbeat.last_event_id >= self.position, (event, self.position)
            self.position = event.heartbeat.last_event_id
        elif event.HasField("typing"):  # never stored: no id, and it does not move the resume point
            assert event.id == 0, event
        else:
            assert event.WhichOneof("payload") is not None, event
            assert event.id > self.position, f"event {event.id} came after {self.position}"
            self.position = event.id
        return event

    def next(self, timeout: float = WAIT) -> chat_pb2.Event:
        """The next item, stored event or heartbeat, past ignored kinds; fails if the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            item = self._take(max(0.0, deadline - time.monotonic()))
            if isinstance(item, grpc.RpcError):
                raise AssertionError(f"the stream ended: {item.code().name}: {item.details()}")
            assert item is not _END, "the stream ended with OK"
            assert isinstance(item, chat_pb2.Event)
            event = self._check(item)
            if event.WhichOneof("payload") not in self.ignore:
                return event

    def live(self, timeout: float = WAIT) -> tuple[list[chat_pb2.Event], chat_pb2.Heartbeat]:
        """The replayed events, then the heartbeat that ends the replay."""
        replayed = []
        while True:
            event = self.next(timeout)
            if event.HasField("heartbeat"):
                assert event.heartbeat.live, f"an idle heartbeat before the live one: {event}"
                return replayed, event.heartbeat
            replayed.append(event)

    def event(self, timeout: float = WAIT) -> chat_pb2.Event:
        """The next stored event, past idle heartbeats, within ``timeout`` in all."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if not event.HasField("heartbeat"):
                return event
            assert not event.heartbeat.live, f"a second live heartbeat: {event}"

    def events(self, count: int, timeout: float = WAIT) -> list[chat_pb2.Event]:
        return [self.event(timeout) for _ in range(count)]

    def ending(self, timeout: float = WAIT) -> tuple[list[chat_pb2.Event], grpc.RpcError]:
        """Every item still to come, and the error the stream ends with."""
        items = []
        while True:
            item = self._take(timeout)
            if isinstance(item, grpc.RpcError):
                return items, item
            assert item is not _END, "the stream ended with OK"
            assert isinstance(item, chat_pb2.Event)
            event = self._check(item)
            if event.WhichOneof("payload") not in self.ignore:
                items.append(event)

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(WAIT)
