"""CPU-heavy pure functions (the lot PDF report) run in worker processes, not on the server's event loop.

A thread would not do: rendering holds the GIL (fpdf2 spends about 2 s of CPU per 1,000 items), so every
other call of the replica would wait behind it. The workers are started with ``spawn`` (forking a process
that runs gRPC's threads is unsafe), lazily on first use, and stopped with the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerProcesses:
    """``await pool.run(function, *args)``: ``function`` and its arguments must be picklable (module-level)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
