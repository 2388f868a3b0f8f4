"""How a Tk app touches the network: RPCs in worker threads, results back on Tk's thread (the dashboard and the
desktop app both use it).

Tk widgets may only be used from the thread that runs Tk's loop. Everything that blocks (an RPC, a stream)
runs elsewhere; what it produces is put on ``inbox`` and handed to the views by ``pump``, which Tk calls with
``after`` every ``POLL_MS``. No view waits for the network.
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("workspace_client.tk")

#: How often the Tk thread looks for results, ms. 10 wake-ups a second cost nothing measurable.
POLL_MS = 100
#: At most this many results per wake-up, so a burst never freezes the window.
BATCH = 200


class Controller:
    def __init__(self, root: tk.Misc, workers: int = 3, name: str = "rpc") -> None:
        self.root = root
        self.inbox: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-rpc")
        self._after = root.after(POLL_MS, self.pump)
        self.closed = False

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """From any thread: run ``callback(*args)`` on the Tk thread soon."""
        self.inbox.put((callback, args))

    def run(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> Future[Any]:
        """Run ``work`` in a worker thread; its result or exception comes back to Tk's thread."""

        def finished(future: Future[Any]) -> None:
            error = future.exception()
            if error is not None:
                if on_error is not None:
                    self.post(on_error, error)
            elif on_done is not None:
                self.post(on_done, future.result())

        future = self.pool.submit(work)
        future.add_done_callback(finished)
        return future

    def pump(self) -> None:
        for _ in range(BATCH):
            try:
                callback, args = self.inbox.get_nowait()
            except queue.Empty:
                break
            try:
                callback(*args)
            except Exception:  # one broken update must not stop the window's updates
                log.exception("a window update failed: %r", callback)
        if not self.closed:
            self._after = self.root.after(POLL_MS, self.pump)

    def close(self) -> None:
        self.closed = True
        try:
            self.root.after_cancel(self._after)
        except tk.TclError:
            pass
        self.pool.shutdown(wait=False, cancel_futures=True)
