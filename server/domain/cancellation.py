"""Work that must end properly even when whoever awaits it is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_to_end(work: Awaitable[T]) -> T:
    """Await ``work`` in a task of its own that cancelling the caller does not interrupt.

    gRPC cancels a call's task when its client goes away or its deadline passes. Cancelled in the middle of a
    unit of work, SQLAlchemy's asyncio layer can lose the connection without closing it, and SQLite keeps that
    connection's write lock for good: every later write waits out the busy timeout and fails. Here the caller's
    cancellation waits for the work to end (committed or rolled back) and is then raised, as it would have been.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():  # further cancellations wait for the same end
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except BaseException:  # the caller is gone: the outcome has no one to go to
                break
        if not task.cancelled():
            task.exception()  # retrieved, so that asyncio does not report it as never retrieved
        raise
