"""Wrapping gRPC method handlers, for the server's interceptors.

grpc.aio interceptors see a handler, not a call; to act around each call they
return a copy of the handler whose behaviour is wrapped. ``wrap_handler`` does
that once for all four kinds of method, so each interceptor only writes the
"around one call" part. Framework services (health, reflection, whose method
names start with ``/grpc.``) are never wrapped: they need no token and would
only add noise to the access log.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from .domain.model import Principal

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
#: Runs one call of a unary-response method: (behavior, request, context) -> response.
AroundUnary = Callable[[Behavior, Any, grpc.aio.ServicerContext], Awaitable[Any]]
#: Runs one call of a streaming-response method, yielding its messages.
AroundStream = Callable[[Behavior, Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


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
    handler: grpc.RpcMethodHandler | None, around_unary: AroundUnary, around_stream: AroundStream
) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None
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
