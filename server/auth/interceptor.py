"""The one place that authenticates calls: ``authorization: Bearer <access token>``.

After the token's signature and expiry check out, the caller's session and
account are looked up (and cached for ``ttl`` seconds), so that logging out,
disabling an account or changing a role takes effect at once on this replica
and within ``ttl`` on the others, without a database query on every call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ..domain.errors import Unauthenticated
from ..domain.model import Principal
from ..interception import Behavior, current_call, is_framework_method, run_behavior_stream, wrap_handler
from .tokens import InvalidToken, TokenCodec

#: Methods callable without a token (besides the framework's health and reflection services).
PUBLIC_METHODS = frozenset({"/workspace.v1.AuthService/Login", "/workspace.v1.AuthService/Refresh"})
#: Sessions whose principal a replica keeps in memory at most.
PRINCIPAL_CACHE_SIZE = 10_000

PrincipalLoader = Callable[[int, str], Awaitable[Principal | None]]


class PrincipalCache:
    """Who is behind each session, for a few seconds. Implements the domain's ``AccessRevocations``."""

    def __init__(self, load: PrincipalLoader, ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    async def get(self, user_id: int, session_id: str) -> Principal | None:
        now = time.monotonic()
        entry = self._entries.get(session_id)
        if entry is not None and entry[0] > now:
            principal = entry[1]
            return principal if principal is not None and principal.user_id == user_id else None
        principal = await self._load(user_id, session_id)
        if self._ttl > 0:
            self._entries[session_id] = (now + self._ttl, principal)
            self._entries.move_to_end(session_id)
            while len(self._entries) > PRINCIPAL_CACHE_SIZE:
                self._entries.popitem(last=False)
        return principal

    def session_ended(self, session_id: str) -> None:
        self._entries.pop(session_id, None)

    def user_changed(self, user_id: int) -> None:
        for session_id, (_, principal) in list(self._entries.items()):
            if principal is not None and principal.user_id == user_id:
                del self._entries[session_id]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, codec: TokenCodec, principals: PrincipalCache) -> None:
        self._codec = codec
        self._principals = principals

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if is_framework_method(method) or method in PUBLIC_METHODS:
            return handler
        return wrap_handler(handler, self._unary, self._stream)

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

    async def _unary(self, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context)
        return await behavior(request, context)

    async def _stream(self, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
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
