"""The one place that turns domain errors into gRPC statuses with rich details.

``google.rpc.BadRequest`` lists bad fields, ``google.rpc.RetryInfo`` says when to
retry, ``google.rpc.ErrorInfo`` carries a machine-readable reason and the
request id. Anything unexpected becomes ``INTERNAL`` with a short error id that
also appears on the server's log line, and never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain import errors
from ..domain.events import ResyncRequired, ServerShuttingDown, StreamEnded, StreamTooSlow
from ..interception import Behavior, current_call, run_behavior_stream

log = logging.getLogger("workspace.errors")
ERROR_DOMAIN = "workspace.v1"

_CODES: list[tuple[type[errors.DomainError], int]] = [
    (errors.InvalidInput, code_pb2.INVALID_ARGUMENT),
    (errors.Unauthenticated, code_pb2.UNAUTHENTICATED),
    (errors.PermissionDenied, code_pb2.PERMISSION_DENIED),
    (errors.NotFound, code_pb2.NOT_FOUND),
    (errors.AlreadyExists, code_pb2.ALREADY_EXISTS),
    (errors.FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (errors.Aborted, code_pb2.ABORTED),
    (errors.Throttled, code_pb2.RESOURCE_EXHAUSTED),
    (errors.TooManyStreams, code_pb2.RESOURCE_EXHAUSTED),
    (errors.Unavailable, code_pb2.UNAVAILABLE),
    (ResyncRequired, code_pb2.OUT_OF_RANGE),
    (StreamTooSlow, code_pb2.RESOURCE_EXHAUSTED),
    (ServerShuttingDown, code_pb2.UNAVAILABLE),
]


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: errors.DomainError, request_id: str | None) -> status_pb2.Status:
    code = next((c for kind, c in _CODES if isinstance(error, kind)), code_pb2.UNKNOWN)
    details = []
    if isinstance(error, errors.InvalidInput | errors.AlreadyExists) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.reason)
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, errors.Throttled):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, int(error.retry_after * 1000)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    info = error_details_pb2.ErrorInfo(reason=error.reason or code_pb2.Code.Name(code), domain=ERROR_DOMAIN)
    if isinstance(error, errors.Throttled):
        info.metadata.update(error.metadata)
    if request_id:
        info.metadata["request_id"] = request_id
    if isinstance(error, StreamEnded):
        info.metadata["last_event_id"] = str(error.last_event_id)
    details.append(_pack(info))
    return status_pb2.Status(code=code, message=error.message, details=details)


class ErrorInterceptor:
    """A ``CallInterceptor`` for every method: exceptions become statuses here and nowhere else."""

    def applies_to(self, method: str) -> bool:
        return True

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        try:
            return await behavior(request, context)
        except Exception as e:
            await self._abort(e, context)

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for message in run_behavior_stream(behavior, request, context):
                yield message
        except Exception as e:
            await self._abort(e, context)

    async def _abort(self, error: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(error, (grpc.aio.AbortError, asyncio.CancelledError)):
            raise error  # already a status (or the caller went away): pass it on untouched
        call = current_call.get()
        request_id = call.request_id if call else None
        if isinstance(error, errors.DomainError):
            status = rpc_status.to_status(to_status(error, request_id))
        else:
            error_id = uuid.uuid4().hex[:12]
            if call is not None:
                call.error_id = error_id
            log.error("unexpected error", exc_info=error, extra={"error_id": error_id, "request_id": request_id})
            info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN, metadata={"error_id": error_id})
            status = rpc_status.to_status(
                status_pb2.Status(
                    code=code_pb2.INTERNAL, message=f"internal error (error id {error_id})", details=[_pack(info)]
                )
            )
        trailing = tuple(status.trailing_metadata) + ((("x-request-id", request_id),) if request_id else ())
        if isinstance(error, errors.Throttled):
            # HTTP's Retry-After (whole seconds, rounded up): the gateway passes it on to REST callers with the 429.
            trailing += (("retry-after", str(max(1, math.ceil(error.retry_after)))),)
        await context.abort(status.code, status.details, trailing)
