"""Several replicas on one PostgreSQL: LISTEN for the notification a commit that wrote events sends.

A notification only says "look": the hub then reads the rows. So a lost
notification (this connection dropped, a replica restarting) delays delivery
until the next one or the hub's poll, and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime

import psycopg

from ..domain.model import EventKind, LiveEvent
from ..storage.unit_of_work import EVENTS_CHANNEL

#: The channel that carries live events (typing) themselves, as JSON, between replicas.
LIVE_CHANNEL = "workspace_live"


def live_to_json(event: LiveEvent, origin: str) -> str:
    return json.dumps(
        {
            "origin": origin,
            "kind": event.kind.value,
            "payload": event.payload,
            "conversation_id": event.conversation_id,
            "from_user_id": event.from_user_id,
            "created_at": event.created_at.isoformat(),
        },
        separators=(",", ":"),
    )


def live_from_json(text: str) -> tuple[str, LiveEvent]:
    data = json.loads(text)
    event = LiveEvent(
        EventKind(data["kind"]),
        data["payload"],
        int(data["conversation_id"]),
        int(data["from_user_id"]),
        datetime.fromisoformat(data["created_at"]),
    )
    return data["origin"], event


log = logging.getLogger("workspace.events")


class PostgresListener:
    """Wakes the hub on stored events' notifications, and hands it the live events other replicas send."""

    def __init__(
        self, conninfo: str, wake: Callable[[], None], offer_live: Callable[[LiveEvent], None], *, instance: str
    ) -> None:
        self._conninfo = conninfo
        self._wake = wake
        self._offer_live = offer_live
        self._instance = instance
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    self.connected.set()
                    delay = 0.1
                    self._wake()  # whatever was committed while not listening
                    async for notification in conn.notifies():
                        if notification.channel == LIVE_CHANNEL:
                            self._live(notification.payload)
                        else:
                            self._wake()
            except (psycopg.Error, OSError) as e:
                if self.connected.is_set():
                    log.warning("lost the event notification connection; reconnecting", extra={"error": str(e)})
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def _live(self, text: str) -> None:
        try:
            origin, event = live_from_json(text)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed live event notification")
            return
        if origin != self._instance:  # this replica delivered its own already
            self._offer_live(event)
