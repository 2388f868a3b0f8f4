"""The server's call interceptors, run as one gRPC interceptor.

grpc.aio interceptors see a handler, not a call; to act around each call they
return a copy of the handler whose behaviour is wrapped. ``wrap_handler`` does
that for all four kinds of method, so each interceptor only writes the "around
one call" part (the ``CallInterceptor`` protocol). ``InterceptorPipeline`` is
the only ``grpc.aio.ServerInterceptor``: it wraps a method's handler in every
interceptor that applies to it once, the first time the method is called, and
hands the same wrapped handler to every later call, so no call pays for
building wrappers. Framework services (health, reflection, whose method names
start with ``/grpc.``) are never wrapped: they need no token and would only add
noise to the access log.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from .domain.cancellation import run_to_end
from .domain.errors import InvalidInput
from .domain.model import Principal

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
#: Runs one call of a unary-response method: (behavior, request, context) -> response.
AroundUnary = Callable[[Behavior, Any, grpc.aio.ServicerContext], Awaitable[Any]]
#: Runs one call of a streaming-response method, yielding its messages.
AroundStream = Callable[[Behavior, Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class CallInterceptor(Protocol):
    """Acts around each call of the methods it ``applies_to``; ``method`` is the full method name."""

    def applies_to(self, method: str) -> bool: ...

    def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Awaitable[Any]: ...

    def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]: ...


def is_framework_method(method: str) -> bool:
    return method.startswith("/grpc.")


@dataclass
class CallInfo:
    """What the interceptors learn about the current call, for logs and servicers."""

    method: str
    request_id: str
    principal: Principal | None = None
    error_id: str | None = None


current_call: ContextVar[CallInfo | None] = ContextVar("current_call", default=None)


async def run_behavior_stream(
    behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """Iterate a streaming behaviour whether it is an async generator or writes to ``context``."""
    result = behavior(request, context)
    if inspect.isasyncgen(result):
        async for message in result:
            yield message
    else:
        await result


def wrap_handler(
    handler: grpc.RpcMethodHandler, around_unary: AroundUnary, around_stream: AroundStream
) -> grpc.RpcMethodHandler:
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await around_unary(inner, request, context)

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary, handler.request_deserializer, handler.response_serializer)

    inner = handler.unary_stream or handler.stream_stream

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for message in around_stream(inner, request, context):
            yield message

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream, handler.request_deserializer, handler.response_serializer)


@dataclass(frozen=True)
class Undecodable:
    """What a request that is not a valid protobuf message of its type decodes to (instead of raising)."""

    type_name: str
    error: str


def nul_field(message: Any, prefix: str = "") -> str | None:
    """The path of the first string field holding a NUL character, or None. PostgreSQL text cannot hold one
    (the driver raises), so every request is refused the same way on both databases, naming the field."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == field.TYPE_STRING:
            if any("\x00" in text for text in (value if field.is_repeated else (value,))):
                return path
        elif field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                entries = [(f"{path}[{key!r}]", key, item) for key, item in value.items()]
            elif field.is_repeated:
                entries = [(f"{path}[{i}]", "", item) for i, item in enumerate(value)]
            else:
                entries = [(path, "", value)]
            for where, key, item in entries:
                if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                    return where
                found = nul_field(item, f"{where}.") if hasattr(item, "ListFields") else None
                if found:
                    return found
    return None


def check_decoding(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The handler with a deserializer that never raises, and a check before the behaviour that answers an
    undecodable request, or one with a NUL character in a string, INVALID_ARGUMENT. (gRPC itself answers
    UNKNOWN with the parser's exception; PostgreSQL refuses NUL in text.)"""
    if not (handler.unary_unary or handler.unary_stream):
        return handler  # request streams (none in this API) keep gRPC's own handling
    deserialize = handler.request_deserializer
    message_type = getattr(deserialize, "__self__", None)
    type_name = message_type.DESCRIPTOR.full_name if message_type is not None else "request"

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:
            return Undecodable(type_name, str(error).rsplit(":", 1)[-1].strip() or "corrupt")

    def refuse(request: Any) -> InvalidInput | None:
        if isinstance(request, Undecodable):
            return InvalidInput.one("request", f"is not a valid {request.type_name} message ({request.error})")
        field = nul_field(request)
        return InvalidInput.one(field, "must not contain the NUL character (U+0000)") if field else None

    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            refused = refuse(request)
            if refused is not None:
                raise refused
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, tolerant, handler.response_serializer)

    inner_stream = handler.unary_stream

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        refused = refuse(request)
        if refused is not None:
            raise refused
        async for message in run_behavior_stream(inner_stream, request, context):
            yield message

    return grpc.unary_stream_rpc_method_handler(stream, tolerant, handler.response_serializer)


class InterceptorPipeline(grpc.aio.ServerInterceptor):
    """Runs ``interceptors`` (outermost first) around each call of the methods they apply to."""

    def __init__(self, interceptors: list[CallInterceptor]) -> None:
        self._interceptors = interceptors
        #: method -> (the handler gRPC found, the same handler wrapped): built once per method.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED, nothing to wrap or remember
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = handler
        if not is_framework_method(method):
            wrapped = check_decoding(handler)  # innermost: after admission, logging and authentication
            for interceptor in reversed(self._interceptors):
                if interceptor.applies_to(method):
                    wrapped = wrap_handler(
                        wrapped,
                        partial(interceptor.around_unary, method),
                        partial(interceptor.around_stream, method),
                    )
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class Admission:
    """A ``CallInterceptor``: counts the calls in flight and, once closed, refuses new ones with UNAVAILABLE.

    Closing it is how shutdown refuses new calls deterministically (gRPC's own stop answers calls that
    arrive meanwhile with CANCELLED or UNAVAILABLE, depending on timing) while those in flight finish.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self._closed: str | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def applies_to(self, method: str) -> bool:
        return True

    def close(self, message: str) -> None:
        self._closed = message

    async def drained(self) -> None:
        """Wait until no call is in flight (the caller bounds the wait)."""
        await self._idle.wait()

    async def _enter(self, context: grpc.aio.ServicerContext) -> None:
        if self._closed is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, self._closed)
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._enter(context)
        try:
            return await behavior(request, context)
        finally:
            self._leave()

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        await self._enter(context)
        try:
            async for message in run_behavior_stream(behavior, request, context):
                yield message
        finally:
            self._leave()


class Uninterrupted:
    """A ``CallInterceptor``: a unary call's work runs to its end even when the caller goes away
    (``run_to_end``: found by firing writes with deadlines of a few milliseconds; tests/test_server.py keeps it
    found). The call ends once the work has (a unary call's work is short and bounded), and then it ends
    cancelled, as gRPC expects. Streams are not wrapped: their one write, presence when one opens, runs to its
    end the same way (``Presence.connected``); the rest is reading, in short units between waits.
    """

    def applies_to(self, method: str) -> bool:
        return True

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        return await run_to_end(behavior(request, context))

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for message in run_behavior_stream(behavior, request, context):
            yield message
