"""Rate limits: one token bucket per class of RPC and per person, and per client address; a cap on open streams.

Every RPC of every service has a class, derived from its descriptor by one rule (``classify``):

- ``login``: ``AuthService.Login`` and ``Refresh`` (nobody is authenticated yet: limited per address only;
  failed logins also have their own per-username throttle, ``LOGIN_THROTTLED``);
- ``stream``: opening a server stream (``StreamEvents``, ``StreamActivity``, ``StreamStats``);
- ``read``: a unary RPC that changes nothing, by its name: ``Get*``, ``List*``, ``Search*``, ``Export*``, ``WhoAmI``;
- ``write``: every other RPC (it changes something).

A call takes one token from its class's bucket for its client address (before authentication, so that floods
of bad tokens are limited too) and one from its person's (after). A caller without a token left gets
``RESOURCE_EXHAUSTED`` (reason ``RATE_LIMITED``) with ``google.rpc.RetryInfo``: the time until the bucket
holds a token again. Buckets live in this replica's memory: with N replicas a person may get up to N times
the rate (docs/OPERATIONS.md). Health and reflection are never limited (the pipeline does not wrap them).

The client address is the peer's IP; only when the peer is a trusted gateway (``trusted_proxies``) is it the
last address of ``x-forwarded-for``, the one that gateway appended (it sets ``use_remote_address``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from .domain.errors import Throttled, TooManyStreams
from .interception import Behavior, current_call, run_behavior_stream


class RateClass(StrEnum):
    LOGIN = "login"
    WRITE = "write"
    READ = "read"
    STREAM = "stream"


#: The RPCs of the ``login`` class (callable without a token).
LOGIN_METHODS = frozenset({"/workspace.v1.AuthService/Login", "/workspace.v1.AuthService/Refresh"})
#: A unary RPC whose name starts with one of these only reads.
READ_PREFIXES = ("Get", "List", "Search", "Export")
#: Unary RPCs that only read although their names do not say so by a prefix.
READ_NAMES = frozenset({"WhoAmI"})
#: How often idle buckets (full again, so the same as none) are forgotten, seconds.
SWEEP_SECONDS = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Refused = Callable[[str, str], None]


def classify(services: Iterable[ServiceDescriptor]) -> dict[str, RateClass]:
    """Every method of ``services`` (full path ``/package.Service/Method``) and its class."""
    table = {}
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if path in LOGIN_METHODS:
                table[path] = RateClass.LOGIN
            elif method.server_streaming or method.client_streaming:
                table[path] = RateClass.STREAM
            elif method.name in READ_NAMES or method.name.startswith(READ_PREFIXES):
                table[path] = RateClass.READ
            else:
                table[path] = RateClass.WRITE
    return table


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: ``per_second`` tokens come back each second, up to ``burst``."""

    per_second: float
    burst: int


class TokenBuckets:
    """One bucket per key (a person's id, an address), all of one ``rate``; full ones are forgotten."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        #: key -> [tokens, when they were counted]
        self._buckets: dict[object, list[float]] = {}
        self._swept = clock()

    def take(self, key: object) -> float:
        """Take a token for ``key``: 0 when there was one, else the seconds until there will be one."""
        now = self._clock()
        rate, burst = self.rate.per_second, self.rate.burst
        bucket = self._buckets.get(key)
        if bucket is None:
            if now - self._swept > SWEEP_SECONDS:
                self._sweep(now)
            self._buckets[key] = [burst - 1.0, now]
            return 0.0
        tokens = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    def _sweep(self, now: float) -> None:
        rate, burst = self.rate.per_second, self.rate.burst
        self._buckets = {k: b for k, b in self._buckets.items() if b[0] + (now - b[1]) * rate < burst}
        self._swept = now


class _OpenStream:
    __slots__ = ("replaced", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.replaced = False


class StreamCap:
    """At most ``per_person`` open streams per person on this replica: a newer one ends their oldest.

    Ending one cancels the task serving it; the stream sees the cancellation, knows it was replaced
    (``replaced``), and ends with ``TooManyStreams`` instead, through the error interceptor like any other
    ending, after its own clean-up (unsubscribing, presence) has run."""

    def __init__(self, per_person: int) -> None:
        self.per_person = per_person
        self._open: dict[int, list[_OpenStream]] = {}

    def open(self, user_id: int) -> _OpenStream:
        stream = _OpenStream(asyncio.current_task())
        streams = self._open.setdefault(user_id, [])
        streams.append(stream)
        live = [s for s in streams if not s.replaced]
        for oldest in live[: max(0, len(live) - self.per_person)]:
            oldest.replaced = True
            if oldest.task is not None:
                oldest.task.cancel()
        return stream

    def close(self, user_id: int, stream: _OpenStream) -> None:
        streams = self._open.get(user_id, [])
        if stream in streams:
            streams.remove(stream)
        if not streams:
            self._open.pop(user_id, None)

    def open_by(self, user_id: int) -> int:
        return sum(not s.replaced for s in self._open.get(user_id, []))


def client_address(context: grpc.aio.ServicerContext, trusted: tuple[Network, ...]) -> str:
    """The caller's IP: the peer's, or from a trusted gateway the last ``x-forwarded-for`` entry."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        address = rest.rpartition(":")[0]
    elif kind == "ipv6":
        address = rest.rpartition(":")[0].strip("[]")
    else:
        return peer  # unix sockets and the like: the peer string itself
    if trusted:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if any(ip in network for network in trusted):
            for key, value in context.invocation_metadata() or ():
                if key == "x-forwarded-for" and isinstance(value, str):
                    forwarded = value.rpartition(",")[2].strip()
                    if forwarded:
                        return forwarded
    return address


class RateLimits:
    """The limits of one replica. ``by_address`` and ``by_person`` are the two ``CallInterceptor``s: the first
    goes before authentication, the second after it (it needs the caller)."""

    def __init__(
        self,
        classes: dict[str, RateClass],
        per_person: dict[RateClass, Rate | None],
        per_address: dict[RateClass, Rate | None],
        *,
        max_streams_per_person: int,
        trusted_proxies: tuple[Network, ...] = (),
        refused: Refused = lambda limit, per: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.classes = classes
        self._person = {c: TokenBuckets(r, clock) for c, r in per_person.items() if r is not None}
        self._address = {c: TokenBuckets(r, clock) for c, r in per_address.items() if r is not None}
        self._trusted = trusted_proxies
        self._refused = refused
        self.streams = StreamCap(max_streams_per_person)
        self.by_address = _ByAddress(self)
        self.by_person = _ByPerson(self)

    def check_address(self, method: str, context: grpc.aio.ServicerContext) -> None:
        limit = self.classes[method]
        self._take(self._address[limit], client_address(context, self._trusted), limit, "address")

    def check_person(self, method: str) -> int:
        limit = self.classes[method]
        call = current_call.get()
        assert call is not None and call.principal is not None, "the auth interceptor runs first"
        user_id = call.principal.user_id
        buckets = self._person.get(limit)
        if buckets is not None:
            self._take(buckets, user_id, limit, "person")
        return user_id

    def _take(self, buckets: TokenBuckets, key: object, limit: RateClass, per: str) -> None:
        wait = buckets.take(key)
        if wait:
            self._refused(limit.value, per)
            rate = buckets.rate
            who = "you" if per == "person" else "your address"
            raise Throttled(
                f"too many {limit.value} calls from {who}: at most {rate.per_second:g} per second"
                f" (bursts of {rate.burst}); retry in {math.ceil(wait * 10) / 10:.1f} s",
                retry_after=wait,
                reason="RATE_LIMITED",
                metadata={"limit": limit.value, "per": per},
            )


class _ByAddress:
    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits

    def applies_to(self, method: str) -> bool:
        limit = self._limits.classes.get(method)
        return limit is not None and limit in self._limits._address

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        self._limits.check_address(method, context)
        return await behavior(request, context)

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        self._limits.check_address(method, context)
        async for message in run_behavior_stream(behavior, request, context):
            yield message


class _ByPerson:
    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits

    def applies_to(self, method: str) -> bool:
        limit = self._limits.classes.get(method)
        # Streams always: the cap on open streams holds even when their opening rate is not limited.
        return limit is RateClass.STREAM or (limit is not None and limit in self._limits._person)

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        self._limits.check_person(method)
        return await behavior(request, context)

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        user_id = self._limits.check_person(method)
        cap = self._limits.streams
        stream = cap.open(user_id)
        try:
            async for message in run_behavior_stream(behavior, request, context):
                yield message
        except asyncio.CancelledError:
            if not stream.replaced:
                raise  # the caller went away, or the server is stopping
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._limits._refused("open_streams", "person")
            raise TooManyStreams(
                f"this stream was ended because a newer stream of yours replaced it: at most {cap.per_person}"
                " streams open at once per person; close the ones you no longer use"
            ) from None
        finally:
            cap.close(user_id, stream)
