"""Several replicas on one PostgreSQL: LISTEN for the notification a commit that wrote events sends.

A notification only says "look": the hub then reads the rows. So a lost
notification (this connection dropped, a replica restarting) delays delivery
until the next one or the hub's poll, and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from ..storage.unit_of_work import EVENTS_CHANNEL

log = logging.getLogger("workspace.events")


class PostgresListener:
    def __init__(self, conninfo: str, wake: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._wake = wake
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
                    self.connected.set()
                    delay = 0.1
                    self._wake()  # whatever was committed while not listening
                    async for _ in conn.notifies():
                        self._wake()
            except (psycopg.Error, OSError) as e:
                if self.connected.is_set():
                    log.warning("lost the event notification connection; reconnecting", extra={"error": str(e)})
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)
