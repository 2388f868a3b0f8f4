"""The one place that authenticates calls: ``authorization: Bearer <access token>``.

After the token's signature and expiry check out, the caller's session and
account are looked up (and cached for ``ttl`` seconds), so that logging out,
disabling an account or changing a role takes effect at once on this replica
and within ``ttl`` on the others, without a database query on every call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import grpc

from ..domain.errors import Unauthenticated
from ..domain.model import Principal
from ..interception import Behavior, current_call, run_behavior_stream
from .tokens import InvalidToken, TokenCodec

#: Methods callable without a token (besides the framework's health and reflection services).
PUBLIC_METHODS = frozenset({"/workspace.v1.AuthService/Login", "/workspace.v1.AuthService/Refresh"})
#: Sessions whose principal a replica keeps in memory at most.
PRINCIPAL_CACHE_SIZE = 10_000

PrincipalLoader = Callable[[int, str], Awaitable[Principal | None]]


class PrincipalCache:
    """Who is behind each session, for a few seconds. Implements the domain's ``AccessRevocations``.

    Concurrent misses for one session share one load, so a burst of calls from a client whose entry
    just expired costs one query, not one per call. A load that started before a revocation
    (``session_ended``, ``user_changed``) is used by the calls waiting on it but not kept.
    """

    def __init__(self, load: PrincipalLoader, ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._loading: dict[tuple[int, str], asyncio.Future[Principal | None]] = {}
        self._revocations = 0  # bumped by every revocation; a load remembers the count it began with

    async def get(self, user_id: int, session_id: str) -> Principal | None:
        entry = self._entries.get(session_id)
        if entry is not None and entry[0] > time.monotonic():
            principal = entry[1]
            return principal if principal is not None and principal.user_id == user_id else None
        key = (user_id, session_id)
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load_and_keep(user_id, session_id))
            loading.add_done_callback(partial(self._loaded, key))
        return await asyncio.shield(loading)  # one caller going away must not cancel the others' load

    def _loaded(self, key: tuple[int, str], loading: asyncio.Future[Principal | None]) -> None:
        self._loading.pop(key, None)
        if not loading.cancelled():
            loading.exception()  # retrieved here, so a failed load whose callers all left is not reported

    async def _load_and_keep(self, user_id: int, session_id: str) -> Principal | None:
        revocations = self._revocations
        principal = await self._load(user_id, session_id)
        if self._ttl > 0 and revocations == self._revocations:
            self._entries[session_id] = (time.monotonic() + self._ttl, principal)
            self._entries.move_to_end(session_id)
            while len(self._entries) > PRINCIPAL_CACHE_SIZE:
                self._entries.popitem(last=False)
        return principal

    def session_ended(self, session_id: str) -> None:
        self._revocations += 1
        self._entries.pop(session_id, None)

    def user_changed(self, user_id: int) -> None:
        self._revocations += 1
        for session_id, (_, principal) in list(self._entries.items()):
            if principal is not None and principal.user_id == user_id:
                del self._entries[session_id]


class AuthInterceptor:
    """A ``CallInterceptor``: every method but ``PUBLIC_METHODS`` needs a valid access token."""

    def __init__(self, codec: TokenCodec, principals: PrincipalCache) -> None:
        self._codec = codec
        self._principals = principals

    def applies_to(self, method: str) -> bool:
        return method not in PUBLIC_METHODS

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        """Find the caller, or raise ``Unauthenticated`` (the error interceptor turns it into a status)."""
        token = _bearer_token(context.invocation_metadata())
        if token is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata", reason="TOKEN_MISSING")
        try:
            claims = self._codec.verify_access_token(token)
        except InvalidToken as e:
            raise Unauthenticated(str(e), reason=e.reason) from None
        principal = await self._principals.get(claims.user_id, claims.session_id)
        if principal is None:
            raise Unauthenticated("session has ended; log in again", reason="SESSION_ENDED")
        call = current_call.get()
        if call is not None:
            call.principal = principal

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._authenticate(context)
        return await behavior(request, context)

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        await self._authenticate(context)
        async for message in run_behavior_stream(behavior, request, context):
            yield message


def _bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def caller() -> Principal:
    """The authenticated caller of the current RPC (servicers call this)."""
    call = current_call.get()
    if call is None or call.principal is None:
        raise RuntimeError("no authenticated caller: is the method listed in PUBLIC_METHODS?")
    return call.principal
