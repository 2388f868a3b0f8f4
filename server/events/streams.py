"""``StreamEvents`` for one caller: replay what they missed, then follow the hub live, with heartbeats.

``StreamActivity`` (``ActivityStreams``) does the same with the activity log: the same event ids, the same
hand-over from replay to live, the same heartbeats and endings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..domain.activity import ActivityEntry, entry_from_event, is_activity, require_admin
from ..domain.errors import Unauthenticated
from ..domain.events import STREAM_ENDINGS, ResyncRequired, admit
from ..domain.model import LiveEvent, Principal, StoredEvent
from ..domain.ports import UnitOfWorkFactory
from ..domain.presence import Presence
from .hub import BATCH, HEARTBEAT, EventHub, Subscription

#: What a stream replays: stored events (StreamEvents) or activity entries (StreamActivity), each with an id.
Replayed = TypeVar("Replayed", StoredEvent, ActivityEntry)


@dataclass(frozen=True)
class Heartbeat:
    """Every event up to ``last_event_id`` the caller may see has been sent; ``live`` ends the replay."""

    last_event_id: int
    live: bool


class EventStreams:
    def __init__(
        self,
        hub: EventHub,
        uow: UnitOfWorkFactory,
        presence: Presence,
        still_signed_in: Callable[[Principal], Awaitable[bool]],
    ) -> None:
        self._hub = hub
        self._uow = uow
        self._presence = presence
        #: whether the stream's session is still valid (not logged out, account not disabled or deleted)
        self._still_signed_in = still_signed_in

    @contextlib.asynccontextmanager
    async def open(
        self, actor: Principal, after_event_id: int
    ) -> AsyncIterator[tuple[Subscription, AsyncIterator[StoredEvent | LiveEvent | Heartbeat]]]:
        """Subscribe and check the resume point (``ResyncRequired`` if unknown); yields what to send.

        The subscription ends when the block does, whether or not the items were read.
        """
        user_id = actor.user_id
        async with self._uow(read_only=True) as uow:
            conversations = await uow.conversations.ids_for_member(user_id)
        # Subscribe before reading where the log ends: every event committed from here on reaches the
        # queue, and everything before is in the replay (the live loop skips what both carry).
        subscription = self._hub.subscribe(user_id, conversations)
        try:
            # Connect before reading where the log ends, so that this stream's own "online" (if it is one) is
            # part of "now": other devices get it, this one starts after it.
            await self._presence.connected(user_id)
        except BaseException:
            self._hub.unsubscribe(subscription)
            raise
        try:
            async with self._uow(read_only=True) as uow:
                newest = await uow.events.last_id()
                oldest = await uow.events.first_id()
            if after_event_id > newest:
                raise ResyncRequired(f"event {after_event_id} is unknown here (the newest is {newest})")
            if after_event_id < newest and (oldest is None or after_event_id < oldest - 1):
                kept = f"the oldest kept is {oldest}" if oldest is not None else "none is kept"
                raise ResyncRequired(f"events after {after_event_id} are no longer kept ({kept})")
            items = self._items(subscription, actor, after_event_id, newest)
            try:
                yield subscription, items
            finally:
                await items.aclose()
        finally:
            self._presence.disconnected(user_id)
            self._hub.unsubscribe(subscription)

    def _items(
        self, subscription: Subscription, actor: Principal, after_event_id: int, newest: int
    ) -> AsyncGenerator[StoredEvent | LiveEvent | Heartbeat]:
        user_id = actor.user_id

        async def visible(cursor: int) -> list[StoredEvent]:
            async with self._uow(read_only=True) as uow:
                return await uow.events.visible_after(cursor, newest, user_id, limit=BATCH)

        async def check_caller() -> None:
            # A stream outlives its access token; at each heartbeat it checks the session behind it,
            # so logging out or a disabled account ends it within a heartbeat interval.
            if not await self._still_signed_in(actor):
                raise Unauthenticated("the session has ended; log in again", reason="SESSION_ENDED")

        return replay_then_follow(
            self._hub,
            subscription,
            after_event_id,
            newest,
            replay=visible,
            keep=lambda event: admit(event, user_id, subscription.conversations),
            check_caller=check_caller,
            convert=lambda event: event,
        )


class ActivityStreams:
    """``StreamActivity`` for one administrator: the entries after an id (from the ``activity`` rows, which
    are never pruned), then the new ones live from the hub, with heartbeats. Watching the log does not make
    anyone "online": no presence bookkeeping here."""

    def __init__(
        self,
        hub: EventHub,
        uow: UnitOfWorkFactory,
        current: Callable[[Principal], Awaitable[Principal | None]],
    ) -> None:
        self._hub = hub
        self._uow = uow
        #: the caller as they are now: None once their session ended or their account was disabled
        self._current = current

    @contextlib.asynccontextmanager
    async def open(self, actor: Principal, after_id: int) -> AsyncIterator[AsyncIterator[ActivityEntry | Heartbeat]]:
        """Check the caller (``PermissionDenied``) and the resume point (``ResyncRequired``), subscribe;
        yields what to send. The subscription ends when the block does."""
        require_admin(actor)
        # Subscribe before reading where the log ends, as StreamEvents does: no gap, and the live loop
        # skips what the replay already sent.
        subscription = self._hub.subscribe(actor.user_id, set(), admits=is_activity, kind="activity")
        try:
            async with self._uow(read_only=True) as uow:
                newest = await uow.events.last_id()
            # Activity rows are never pruned: only an id the log has not reached is unknown.
            if after_id > newest:
                raise ResyncRequired(f"event {after_id} is unknown here (the newest is {newest})")
            items = self._items(subscription, actor, after_id, newest)
            try:
                yield items
            finally:
                await items.aclose()
        finally:
            self._hub.unsubscribe(subscription)

    def _items(
        self, subscription: Subscription, actor: Principal, after_id: int, newest: int
    ) -> AsyncGenerator[ActivityEntry | LiveEvent | Heartbeat]:
        async def entries(cursor: int) -> list[ActivityEntry]:
            async with self._uow(read_only=True) as uow:
                return await uow.activity.between(cursor, newest, limit=BATCH)

        async def check_caller() -> None:
            # As for StreamEvents, and more: the caller must still be an administrator.
            nonlocal actor
            current = await self._current(actor)
            if current is None:
                raise Unauthenticated("the session has ended; log in again", reason="SESSION_ENDED")
            require_admin(current)
            actor = current

        return replay_then_follow(
            self._hub,
            subscription,
            after_id,
            newest,
            replay=entries,
            keep=lambda entry: True,
            check_caller=check_caller,
            convert=entry_from_event,
        )


async def replay_then_follow(
    hub: EventHub,
    subscription: Subscription,
    after_id: int,
    newest: int,
    *,
    replay: Callable[[int], Awaitable[Sequence[Replayed]]],
    keep: Callable[[Replayed], bool],
    check_caller: Callable[[], Awaitable[None]],
    convert: Callable[[StoredEvent], Replayed],
) -> AsyncGenerator[Replayed | LiveEvent | Heartbeat]:
    """What a resumable stream sends, for StreamEvents and StreamActivity alike: the items after ``after_id``
    up to ``newest`` (``replay`` reads a batch after a cursor, ``keep`` says which the caller may see), the
    live heartbeat, then what the hub queues (``convert`` turns a stored event into an item), skipping what
    the replay already sent, with a heartbeat when quiet (``check_caller`` runs first and raises to end the
    stream), and the hub's ending as the error that says where to resume."""
    cursor = after_id
    while after_id and cursor < newest:  # replay, in batches
        batch = await replay(cursor)
        for item in batch:
            cursor = item.id
            if keep(item):
                yield item
        if len(batch) < BATCH:
            break
    last = newest
    yield Heartbeat(newest, live=True)
    queue = subscription.queue
    loop = asyncio.get_running_loop()
    while True:
        event = await queue.get()
        if event is HEARTBEAT:
            await check_caller()
            if queue.empty():  # all the hub dispatched so far has been offered, and none is pending
                last = max(last, hub.position)
            yield Heartbeat(last, live=False)
            continue
        if subscription.ended is not None:
            reason, message = subscription.ended
            raise STREAM_ENDINGS[reason](message, last_event_id=last)
        if isinstance(event, LiveEvent):
            yield event  # never stored: no id, nothing to resume from (activity streams get none)
            continue
        if not isinstance(event, StoredEvent) or event.id <= last:
            continue  # the wake-up of an ending, or an item the replay already sent
        yield convert(event)
        last = event.id
        subscription.last_sent_at = loop.time()
