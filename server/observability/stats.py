"""The measurements behind ``MonitoringService``: per-RPC figures over the last minute, rates from counters,
and the process's CPU and memory. Plain Python with no I/O; the composition root feeds and reads them.

Nothing here is sampled or estimated beyond what each docstring says: a call is counted when it finishes,
its duration lands in a histogram bucket at most 10 % wide, and a rate is a difference of counters.
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..domain.monitoring import DatabaseFigures, ProcessFigures, ReplicaFigures, RpcFigures

#: The window of the per-RPC figures, in one-second slots.
WINDOW_SECONDS = 60
#: Events per second and deliveries per second are taken over this many seconds.
RATE_SECONDS = 10
#: Histogram buckets: each 10 % wider than the last, from 10 µs; a quantile is reported as its bucket's
#: middle, so within about 5 % of the true value.
_BUCKET_BASE = 1e-5
_BUCKET_GROWTH = 1.1
_LOG_GROWTH = math.log(_BUCKET_GROWTH)
_LAST_BUCKET = 200  # 10 µs x 1.1^200: about 2 days, far beyond any call
#: Statuses that are the server's failure rather than the caller's.
SERVER_ERRORS = frozenset({"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"})


def _bucket(seconds: float) -> int:
    if seconds <= _BUCKET_BASE:
        return 0
    return min(_LAST_BUCKET, int(math.log(seconds / _BUCKET_BASE) / _LOG_GROWTH) + 1)


def _bucket_middle(index: int) -> float:
    if index == 0:
        return _BUCKET_BASE
    low = _BUCKET_BASE * _BUCKET_GROWTH ** (index - 1)
    return low * (1 + _BUCKET_GROWTH) / 2


class _Slot:
    __slots__ = ("buckets", "calls", "errors", "second", "server_errors")

    def __init__(self) -> None:
        self.second = -1
        self.calls = self.errors = self.server_errors = 0
        self.buckets: dict[int, int] = {}

    def reset(self, second: int) -> None:
        self.second = second
        self.calls = self.errors = self.server_errors = 0
        self.buckets = {}


class RpcWindow:
    """Calls, errors and durations of each method over the last ``WINDOW_SECONDS``, in one-second slots.

    ``record`` runs once per finished call, ``figures`` once per stats tick, both on the event loop's thread:
    no lock, and ``record`` stays a few dictionary operations.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: dict[str, list[_Slot]] = {}

    def record(self, method: str, code: str, seconds: float) -> None:
        now = int(self._clock())
        slots = self._slots.get(method)
        if slots is None:
            slots = self._slots[method] = [_Slot() for _ in range(WINDOW_SECONDS)]
        slot = slots[now % WINDOW_SECONDS]
        if slot.second != now:
            slot.reset(now)
        slot.calls += 1
        if code != "OK":
            slot.errors += 1
            if code in SERVER_ERRORS:
                slot.server_errors += 1
        index = _bucket(seconds)
        slot.buckets[index] = slot.buckets.get(index, 0) + 1

    def figures(self) -> list[RpcFigures]:
        """Every method called within the window, by name."""
        oldest = int(self._clock()) - WINDOW_SECONDS + 1
        found = []
        for method, slots in sorted(self._slots.items()):
            live = [s for s in slots if s.second >= oldest]
            calls = sum(s.calls for s in live)
            if not calls:
                continue
            merged: dict[int, int] = {}
            for s in live:
                for index, count in s.buckets.items():
                    merged[index] = merged.get(index, 0) + count
            errors = sum(s.errors for s in live)
            server_errors = sum(s.server_errors for s in live)
            found.append(
                RpcFigures(
                    method=method,
                    calls=calls,
                    calls_per_second=calls / WINDOW_SECONDS,
                    p50_seconds=_quantile(merged, calls, 0.50),
                    p99_seconds=_quantile(merged, calls, 0.99),
                    error_rate=errors / calls,
                    server_error_rate=server_errors / calls,
                )
            )
        return found


def _quantile(buckets: dict[int, int], total: int, q: float) -> float:
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return _bucket_middle(index)
    return _bucket_middle(max(buckets))


class CounterHistory:
    """Samples of ever-growing counters, one per tick, so that a rate over the last N seconds is a difference.

    Keeps ``seconds`` of history; with less history than asked for, a rate uses what there is.
    """

    def __init__(self, seconds: float = WINDOW_SECONDS + 5) -> None:
        self._keep = seconds
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, at: float, counters: dict[str, int]) -> None:
        self._samples.append((at, dict(counters)))
        while self._samples and at - self._samples[0][0] > self._keep:
            self._samples.popleft()

    def increase(self, name: str, over: float) -> tuple[float, float]:
        """(how much ``name`` grew, over how many seconds) within the last ``over`` seconds of samples."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        newest_at, newest = self._samples[-1]
        start_at, start = self._samples[0]
        for at, counters in self._samples:
            if newest_at - at <= over:
                start_at, start = at, counters
                break
        return float(newest.get(name, 0) - start.get(name, 0)), newest_at - start_at

    def rate(self, name: str, over: float) -> float:
        """Per second, over the last ``over`` seconds."""
        grew, seconds = self.increase(name, over)
        return grew / seconds if seconds > 0 else 0.0

    def per_window(self, name: str, window: float) -> float:
        """How much ``name`` grew in the last ``window`` seconds (since the first sample, while the history is
        shorter: a replica that just started counts what it has seen)."""
        return self.increase(name, window)[0]


class ProcessSampler:
    """This process's CPU use between two samples (percent of one core), resident memory and threads."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def sample(self) -> ProcessFigures:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._last
        self._last = (wall, cpu)
        percent = 100.0 * (cpu - last_cpu) / (wall - last_wall) if wall > last_wall else 0.0
        return ProcessFigures(cpu_percent=percent, memory_rss_bytes=self._rss(), threads=self._threads())

    @staticmethod
    def _threads() -> int:
        try:
            return len(os.listdir("/proc/self/task"))  # grpc's own threads included
        except OSError:
            return threading.active_count()

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * self._page
        except OSError:  # not Linux: the peak is what the standard library offers
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ReplicaMeter:
    """Measures this replica at each tick, from the sources the composition root hands it."""

    def __init__(
        self,
        *,
        replica_id: str,
        instance_id: str,
        version: str,
        database_kind: str,
        clock: Callable[[], datetime],
        rpcs: RpcWindow,
        counts: Callable[[], dict[str, int]],
        people: Callable[[], int],
        open_streams: Callable[[], dict[str, int]],
        probe: Callable[[], Awaitable[tuple[bool, float, str]]],
        pool: Callable[[], tuple[int, int]],
    ) -> None:
        self._identity = (replica_id, instance_id, version)
        self._database_kind = database_kind
        self._clock = clock
        self._rpcs = rpcs
        self._counts = counts
        self._people = people
        self._open_streams = open_streams
        self._probe = probe
        self._pool = pool
        self._history = CounterHistory()
        self._process = ProcessSampler()
        self.start_time = clock()

    async def measure(self) -> ReplicaFigures:
        self._history.add(time.monotonic(), self._counts())
        reachable, seconds, error = await self._probe()
        now = self._clock()
        size, in_use = self._pool()
        replica_id, instance_id, version = self._identity
        return ReplicaFigures(
            replica_id=replica_id,
            instance_id=instance_id,
            version=version,
            start_time=self.start_time,
            report_time=now,
            connected_people=self._people(),
            open_streams=self._open_streams(),
            messages_per_minute=self._history.per_window("messages", 60),
            events_per_second=self._history.rate("stored", RATE_SECONDS),
            deliveries_per_second=self._history.rate("delivered", RATE_SECONDS),
            rpcs=tuple(self._rpcs.figures()),
            database=DatabaseFigures(
                kind=self._database_kind,
                reachable=reachable,
                query_seconds=seconds,
                check_time=now,
                error=error,
                pool_size=size,
                pool_in_use=in_use,
            ),
            process=self._process.sample(),
        )
