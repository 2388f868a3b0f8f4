"""Presence (online, away, offline, a status text) and typing.

A person is online while at least one of their streams is open on any server
process. Each process counts its own streams per person in memory and keeps
one row per person in ``presence_connections``, refreshed while it runs: a
process that dies stops refreshing, and its rows stop counting. Going offline
waits for a grace period after the last stream closed, so a reconnect does not
flicker. A change of the announced state (or of the status text) is a stored
event that reaches the people who share a conversation with the person.
Typing is a live event, never stored, throttled per person and conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from .activity import record_activity
from .cancellation import run_to_end
from .errors import NotFound, Validator
from .model import EventKind, LiveEvent, NewEvent, PresenceRecord, PresenceState, Principal
from .ports import Clock, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("workspace.presence")
STATUS_TEXT_MAX = 100
#: A typing event tells clients to show it this long unless renewed.
TYPING_SECONDS = 5.0
#: At most one typing event per person and conversation this often, however often it is sent.
TYPING_EVERY_SECONDS = 2.0
#: People asked about in one GetPresence.
PRESENCE_BATCH_MAX = 500
#: The longest a stopping replica spends removing its presence rows.
FORGET_SECONDS = 5.0


def presence_payload(record: PresenceRecord, conversation_ids: set[int]) -> dict[str, object]:
    return {
        "user_id": record.user_id,
        "state": record.state.value,
        "status_text": record.status_text,
        "last_seen_at": record.last_seen_at.isoformat() if record.last_seen_at else None,
        "changed_at": record.changed_at.isoformat() if record.changed_at else None,
        # who may see it: the members of these conversations, taken when it happened
        "conversation_ids": sorted(conversation_ids),
    }


def check_status_text(v: Validator, text: str) -> str:
    """Report what is wrong with a status text to ``v``; returns it trimmed."""
    clean = text.strip()
    if len(clean) > STATUS_TEXT_MAX:
        v.add("presence.status_text", f"must be at most {STATUS_TEXT_MAX} characters")
    elif any(not ch.isprintable() for ch in clean):
        v.add("presence.status_text", "must not contain control characters")
    return clean


def _nobody(user_id: int) -> PresenceRecord:
    return PresenceRecord(user_id, PresenceState.OFFLINE, False, "", None, None)


class Presence:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        publish_live: Callable[[LiveEvent], Awaitable[None]],
        *,
        instance: str,
        grace_seconds: float,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._publish_live = publish_live
        self._instance = instance
        self._grace = grace_seconds
        #: how often this process marks its rows alive; rows older than three of these are a dead process's
        self._refresh = max(0.1, min(grace_seconds / 2, 10.0))
        self._streams: Counter[int] = Counter()
        self._typing_sent: dict[tuple[int, int], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        #: this process writes its presence rows one change at a time, each with the count of that moment,
        #: so a late write can never undo a newer one (a stream closing and another opening at once)
        self._writing = asyncio.Lock()

    # --- connections ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="presence-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            task.cancel()
        # Bounded: the database may be gone, or a cancelled write's connection may still hold these rows;
        # they then go stale by themselves.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(FORGET_SECONDS):
                await self._forget_instance()

    async def _forget_instance(self) -> None:
        async with self._uow() as uow:
            await uow.presence.forget_instance(self._instance)
            await uow.commit()

    async def connected(self, user_id: int) -> None:
        self._streams[user_id] += 1
        try:
            # A stream's client may go away at once: the write still ends properly (see run_to_end).
            await run_to_end(self._record_connected(user_id))
        except BaseException:  # the stream will not open: it does not count, as if it had closed
            self.disconnected(user_id)
            raise

    async def _record_connected(self, user_id: int) -> None:
        async with self._writing, self._uow() as uow:
            now = self._clock()
            await uow.presence.set_streams(self._instance, user_id, self._streams.get(user_id, 0), now)
            await self._settle(uow, user_id, now, seen=True)
            await uow.commit()

    def disconnected(self, user_id: int) -> None:
        """A stream closed (never raises: it runs in the stream's clean-up)."""
        self._streams[user_id] -= 1
        if self._streams[user_id] <= 0:
            del self._streams[user_id]
        self._spawn(self._after_disconnect(user_id))

    async def _after_disconnect(self, user_id: int) -> None:
        async with self._writing, self._uow() as uow:
            now = self._clock()
            left = self._streams.get(user_id, 0)  # now, not when the stream closed: another may have opened
            await uow.presence.set_streams(self._instance, user_id, left, now)
            record = (await uow.presence.get_many([user_id])).get(user_id)
            if record is not None and left == 0:
                await uow.presence.save(replace(record, last_seen_at=now))
            await uow.commit()
        if left == 0:
            await asyncio.sleep(self._grace + 0.05)
            await self.settle(user_id)

    async def settle(self, user_id: int) -> None:
        """Announce the person's state if it changed (offline only once the grace period is over)."""
        async with self._writing, self._uow() as uow:
            if await self._settle(uow, user_id, self._clock(), seen=False):
                await uow.commit()

    async def _settle(self, uow: UnitOfWork, user_id: int, now: datetime, *, seen: bool) -> bool:
        record = (await uow.presence.get_many([user_id])).get(user_id) or _nobody(user_id)
        streams = await uow.presence.live_streams(user_id, alive_since=self.alive_since(now))
        if streams:
            state = PresenceState.AWAY if record.away else PresenceState.ONLINE
        else:
            last = record.last_seen_at
            if last is not None and now - last < timedelta(seconds=self._grace):
                return False  # too early to say: the grace period is not over
            state = PresenceState.OFFLINE
        if state is record.state:
            if seen and state is not PresenceState.OFFLINE:
                await uow.presence.save(replace(record, last_seen_at=now))
                return True
            return False
        await self._announce(uow, replace(record, state=state, last_seen_at=now, changed_at=now), now)
        return True

    def alive_since(self, now: datetime) -> datetime:
        """Rows refreshed since then belong to a running process."""
        return now - timedelta(seconds=3 * self._refresh)

    async def _announce(self, uow: UnitOfWork, record: PresenceRecord, now: datetime) -> None:
        await uow.presence.save(record)
        conversations = await uow.conversations.ids_for_member(record.user_id)
        payload = presence_payload(record, conversations)
        await uow.events.append(NewEvent(EventKind.PRESENCE_CHANGED, payload, user_id=record.user_id), now)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                async with self._uow() as uow:
                    await uow.presence.refresh(self._instance, self._clock())
                    await uow.commit()
                async with self._uow(read_only=True) as uow:
                    candidates = await uow.presence.not_offline()
                for user_id in candidates:
                    if user_id not in self._streams:  # ours are known to be connected
                        await self.settle(user_id)
            except Exception:
                log.exception("presence sweep failed; retrying")

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("presence update failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what people ask -------------------------------------------------------------------------

    async def get(self, actor: Principal, user_ids: list[int]) -> list[PresenceRecord]:
        wanted = list(dict.fromkeys(user_ids))
        async with self._uow(read_only=True) as uow:
            enabled = await uow.users.enabled_ids(wanted)
            records = await uow.presence.get_many([u for u in wanted if u in enabled])
        return [records.get(u) or _nobody(u) for u in wanted if u in enabled]

    async def update(self, actor: Principal, *, away: bool | None, status_text: str | None) -> PresenceRecord:
        if status_text is not None:
            v = Validator()
            status_text = check_status_text(v, status_text)
            v.raise_if_any()
        async with self._writing, self._uow() as uow:
            now = self._clock()
            record = (await uow.presence.get_many([actor.user_id])).get(actor.user_id) or _nobody(actor.user_id)
            changed = replace(
                record,
                away=record.away if away is None else away,
                status_text=record.status_text if status_text is None else status_text,
            )
            streams = await uow.presence.live_streams(actor.user_id, alive_since=self.alive_since(now))
            state = record.state
            if streams:
                state = PresenceState.AWAY if changed.away else PresenceState.ONLINE
            changed = replace(changed, state=state)
            if (changed.state, changed.status_text) != (record.state, record.status_text):
                await self._announce(uow, replace(changed, changed_at=now), now)
            else:
                await uow.presence.save(changed)
            if changed.status_text != record.status_text:  # online, away and offline are no activity
                await record_activity(
                    uow, actor.user, "presence.update_status", "user", actor.user_id, changed.status_text, now
                )
            await uow.commit()
            return (await uow.presence.get_many([actor.user_id]))[actor.user_id]

    def _typing_throttled(self, key: tuple[int, int]) -> bool:
        last = self._typing_sent.get(key)
        return last is not None and time.monotonic() - last < TYPING_EVERY_SECONDS

    async def typing(self, actor: Principal, conversation_id: int) -> None:
        key = (actor.user_id, conversation_id)
        if self._typing_throttled(key):
            # Coalesced: the one sent less than two seconds ago still shows. It was only sent after the
            # membership check below, so answering without a query reveals nothing to a non-member.
            return
        async with self._uow(read_only=True) as uow:
            if not await uow.conversations.is_member(conversation_id, actor.user_id):
                raise NotFound(f"conversation {conversation_id} not found")
        if self._typing_throttled(key):  # again: concurrent calls passed the first check during the query
            return
        moment = time.monotonic()
        self._typing_sent[key] = moment
        if len(self._typing_sent) > 10_000:  # forget what no longer throttles anything
            self._typing_sent = {k: t for k, t in self._typing_sent.items() if moment - t < TYPING_EVERY_SECONDS}
        now = self._clock()
        expires = now + timedelta(seconds=TYPING_SECONDS)
        payload = {"conversation_id": conversation_id, "user_id": actor.user_id, "expire_at": expires.isoformat()}
        await self._publish_live(LiveEvent(EventKind.TYPING, payload, conversation_id, actor.user_id, now))
