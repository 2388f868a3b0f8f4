"""The outermost interceptor: one JSON log line and one metrics sample per call.

It also gives each call a request id (the caller's ``x-request-id`` metadata if
it sent a sane one, a fresh one otherwise), returned in trailing metadata and
written on every log line the call causes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..interception import Behavior, CallInfo, current_call, run_behavior_stream
from .metrics import RpcMetrics

log = logging.getLogger("workspace.access")
REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: "$" would let a final "\n" in


class AccessLogInterceptor:
    """A ``CallInterceptor`` for every method; the outermost, so it times and logs everything else."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def applies_to(self, method: str) -> bool:
        return True

    def _begin(self, method: str, context: grpc.aio.ServicerContext) -> tuple[CallInfo, float]:
        request_id = _request_id(context.invocation_metadata())
        call = CallInfo(method=method, request_id=request_id)
        current_call.set(call)
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        self._metrics.started(method)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rpc started", extra={"method": method, "request_id": request_id, "peer": context.peer()})
        return call, time.perf_counter()

    def _end(
        self, call: CallInfo, started: float, context: grpc.aio.ServicerContext, failure: BaseException | None
    ) -> None:
        seconds = time.perf_counter() - started
        if isinstance(failure, asyncio.CancelledError):
            code = "CANCELLED"
        else:
            status = context.code()
            code = status.name if status is not None else ("UNKNOWN" if failure else "OK")
        self._metrics.finished(call.method, code, seconds)
        fields: dict[str, object] = {
            "method": call.method,
            "code": code,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": call.request_id,
            "user": call.principal.user.username if call.principal else None,
        }
        if call.error_id:
            fields["error_id"] = call.error_id
        log.info("rpc", extra=fields)

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        call, started = self._begin(method, context)
        failure: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as e:
            failure = e
            raise
        finally:
            self._end(call, started, context, failure)

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        call, started = self._begin(method, context)
        failure: BaseException | None = None
        try:
            async for message in run_behavior_stream(behavior, request, context):
                yield message
        except BaseException as e:
            failure = e
            raise
        finally:
            self._end(call, started, context, failure)


#: Fresh request ids: a random prefix per process, then a counter, so they are unique across replicas
#: and restarts without a call to the random source on every call.
_fresh_ids = (f"{_prefix}{n:08x}" for _prefix in [secrets.token_hex(4)] for n in itertools.count(1))


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return next(_fresh_ids)
