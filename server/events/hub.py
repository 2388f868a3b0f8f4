"""One hub per replica: it follows the event log and hands each new event to the subscribers that may see it.

The rows are the truth. The hub never receives events, only wake-ups: after a
local commit that wrote events (in-process), or a PostgreSQL notification from
another replica (``listener.py``), or every ``poll_seconds`` in case a
notification was lost. Each time, it reads the events after the last one it
dispatched, in id order, so every subscriber sees every event it may see,
once, in order, whichever replica wrote it. A broker (NATS, Redis) could
replace the wake-up without touching anything else.

Each subscriber has a bounded queue. One that is full when an event arrives
is ended (``STREAM_TOO_SLOW``): the event is not dropped, the subscriber is,
and it resumes from its last id. The hub never waits for a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from ..domain.events import admit
from ..domain.model import EventKind, LiveEvent, StoredEvent
from ..domain.ports import Clock, UnitOfWorkFactory

log = logging.getLogger("workspace.events")
#: Events read from the log per query.
BATCH = 500


class Beat:
    """Put in a quiet subscription's queue by the hub: time for a heartbeat."""


HEARTBEAT = Beat()


@dataclass
class HubCounts:
    """Counters that only grow, read by the stats ticks and Prometheus: rates are their differences."""

    #: stored events read from the log (every replica's)
    stored: int = 0
    #: of which chat messages created
    messages: int = 0
    #: events (stored or live) put on this replica's streams
    delivered: int = 0
    #: events a stream could not take because it was too far behind (it is ended, and resumes from the log)
    dropped: int = 0


class Subscription:
    """One open stream's view of the hub: its queue, what it may see, and why it ended (if it did)."""

    #: what the monitoring figures count it as (``open_streams``)
    kind = "events"

    def __init__(self, user_id: int, conversations: set[int], queue_size: int, counts: HubCounts) -> None:
        self.user_id = user_id
        self._counts = counts
        self.conversations = conversations
        self.queue: asyncio.Queue[StoredEvent | LiveEvent | Beat | None] = asyncio.Queue(maxsize=queue_size)
        #: (reason, message) once the hub ended this subscription
        self.ended: tuple[str, str] | None = None
        #: loop time of the last item the stream sent; the hub sends a heartbeat after a quiet while
        self.last_sent_at = asyncio.get_running_loop().time()

    def offer(self, event: StoredEvent) -> None:
        if admit(event, self.user_id, self.conversations):
            self._put(event)

    def _put(self, event: StoredEvent | LiveEvent) -> None:
        if self.ended is not None:
            return
        try:
            self.queue.put_nowait(event)
            self._counts.delivered += 1
        except asyncio.QueueFull:
            self._counts.dropped += 1
            self.end("STREAM_TOO_SLOW", f"the stream fell more than {self.queue.maxsize} events behind")

    def offer_live(self, event: LiveEvent) -> None:
        if (
            self.ended is not None
            or event.from_user_id == self.user_id
            or event.conversation_id not in self.conversations
        ):
            return
        try:
            self.queue.put_nowait(event)
            self._counts.delivered += 1
        except asyncio.QueueFull:
            self._counts.dropped += 1
            self.end("STREAM_TOO_SLOW", f"the stream fell more than {self.queue.maxsize} events behind")

    def end(self, reason: str, message: str) -> None:
        if self.ended is None:
            self.ended = (reason, message)
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)  # wakes a reader waiting on an empty queue


class FilteredSubscription(Subscription):
    """A stream of some stored events whoever they concern (``admits`` says which), never of live ones:
    ``StreamActivity``'s. Chat's ``admit`` and conversations play no part."""

    def __init__(
        self,
        user_id: int,
        admits: Callable[[StoredEvent], bool],
        kind: str,
        queue_size: int,
        counts: HubCounts,
    ) -> None:
        super().__init__(user_id, set(), queue_size, counts)
        self._admits = admits
        self.kind = kind

    def offer(self, event: StoredEvent) -> None:
        if self._admits(event):
            self._put(event)

    def offer_live(self, event: LiveEvent) -> None:
        pass


class EventHub:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        queue_size: int,
        poll_seconds: float,
        heartbeat_seconds: float,
        retention: timedelta,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._retention = retention
        self._clock = clock
        self._queue_size = queue_size
        self._poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._subscriptions: set[Subscription] = set()
        self.counts = HubCounts()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: the id of the last event dispatched; every event up to it has been offered to every subscriber
        self.position = 0
        #: sends live events to the other replicas (set with several replicas on PostgreSQL)
        self.remote: Callable[[LiveEvent], Awaitable[None]] | None = None

    async def start(self) -> None:
        async with self._uow(read_only=True) as uow:
            self.position = await uow.events.last_id()
        self._tasks = [
            asyncio.create_task(self._run(), name="event-hub"),
            asyncio.create_task(self._beat(), name="event-heartbeats"),
            asyncio.create_task(self._prune(), name="event-retention"),
        ]

    async def stop(self, reason: str, message: str) -> None:
        """End every subscription with ``reason`` and stop following the log."""
        for subscription in list(self._subscriptions):
            subscription.end(reason, message)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def publish_live(self, event: LiveEvent) -> None:
        """Deliver an event that is never stored: to this replica's streams, and through ``remote`` to the others."""
        self.offer_live(event)
        if self.remote is not None:
            await self.remote(event)

    def offer_live(self, event: LiveEvent) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer_live(event)

    def wake(self) -> None:
        """Look for new events now (called after a local commit, or on a notification)."""
        self._wake.set()

    def subscribe(
        self,
        user_id: int,
        conversations: set[int],
        *,
        admits: Callable[[StoredEvent], bool] | None = None,
        kind: str = "events",
    ) -> Subscription:
        """A chat stream's subscription (what ``admit`` lets ``user_id`` see), or with ``admits``, one that gets
        the stored events it admits and no live ones, counted as ``kind``."""
        if admits is None:
            subscription = Subscription(user_id, conversations, self._queue_size, self.counts)
        else:
            subscription = FilteredSubscription(user_id, admits, kind, self._queue_size, self.counts)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def subscribers_by_kind(self) -> dict[str, int]:
        """Open subscriptions by kind: ``events`` (chat), and the kinds given to ``subscribe``."""
        return dict(Counter(subscription.kind for subscription in self._subscriptions))

    def subscribed_people(self) -> int:
        """Distinct people with a chat stream open here (watching the activity log does not count)."""
        return len({s.user_id for s in self._subscriptions if s.kind == "events"})

    async def _beat(self) -> None:
        """Heartbeats for quiet streams: one timer for all of them, so a delivery never pays for one."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_seconds / 4)
            due = loop.time() - self.heartbeat_seconds
            for subscription in list(self._subscriptions):
                if subscription.last_sent_at <= due and subscription.queue.empty():
                    subscription.queue.put_nowait(HEARTBEAT)
                    subscription.last_sent_at = loop.time()

    async def _prune(self) -> None:
        """Delete events older than the retention window (a stream resuming before it must resynchronise)."""
        every = min(3600.0, max(0.5, self._retention.total_seconds() / 4))
        while True:
            try:
                async with self._uow() as uow:
                    pruned = await uow.events.prune(self._clock() - self._retention)
                    await uow.commit()
                if pruned:
                    log.info("pruned old events", extra={"events": pruned})
            except Exception:
                log.exception("cannot prune the event log; retrying later")
            await asyncio.sleep(every)

    async def _run(self) -> None:
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as
            # the wait ends (gh-86296), and stop() then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
                failures = 0
            except Exception:  # the database went away: keep trying, the rows will still be there
                failures += 1
                log.exception("cannot read the event log", extra={"failures": failures})
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                self._wake.set()

    async def _catch_up(self) -> None:
        while True:
            async with self._uow(read_only=True) as uow:
                events = await uow.events.after(self.position, limit=BATCH)
            for event in events:
                for subscription in list(self._subscriptions):
                    subscription.offer(event)
                self.position = event.id
                self.counts.stored += 1
                if event.kind is EventKind.MESSAGE_CREATED:
                    self.counts.messages += 1
            if len(events) < BATCH:
                return
