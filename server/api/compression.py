"""Compression of replies: large ones gzipped for clients that accept it, small ones and stream messages never.

Requests: grpc decompresses gzip and deflate requests of every method before a servicer sees them; nothing to
do here.

Replies: grpc Python's own per-call switch, ``context.set_compression``, has no effect on a grpc.aio server
(grpc/grpc#34690), and its server-wide ``compression=`` compresses for every client, even one that did not
say it accepts the algorithm (that client then fails the call with INTERNAL). What does negotiate is a
compression *level* (``grpc.default_compression_level``, set in ``server.app``): grpc then compresses with
gzip for a client whose ``grpc-accept-encoding`` lists it (grpc clients do by default) and not at all for
one that does not (Envoy's REST transcoder, browsers' gRPC-Web). ``ReplyCompression`` then opts the replies
out that would only cost CPU: a unary reply smaller than ``COMPRESS_REPLIES_FROM_BYTES`` (most of them: one
user, one message, an acknowledgement), an ``HttpBody`` that is compressed already (a PDF), and every stream
message (events are small, and a fan-out would pay for each one per subscriber). What is left compressed:
history and search pages, lists of lots and items, calendars; bench/compression.py measures the gain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.api import httpbody_pb2

from ..interception import Behavior, run_behavior_stream

#: grpc's compression level for every reply: "low" picks gzip for the clients that accept it.
SERVER_COMPRESSION_OPTION = ("grpc.default_compression_level", 1)
#: Unary replies at least this large (serialised) are sent compressed; smaller ones as they are.
COMPRESS_REPLIES_FROM_BYTES = 1024
#: Media types of ``HttpBody`` replies that gzip cannot shrink: sent as they are, whatever their size.
ALREADY_COMPRESSED = ("application/pdf", "application/zip", "application/gzip", "image/png", "image/jpeg")


def worth_compressing(reply: Any) -> bool:
    if isinstance(reply, httpbody_pb2.HttpBody) and reply.content_type.split(";")[0].strip() in ALREADY_COMPRESSED:
        return False
    return reply.ByteSize() >= COMPRESS_REPLIES_FROM_BYTES


class _UncompressedWrites:
    """A servicer context whose ``write`` sends each message uncompressed; everything else is the context's."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    async def write(self, message: Any) -> None:
        self._context.disable_next_message_compression()
        await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class ReplyCompression:
    """The ``CallInterceptor`` that leaves only the replies worth it to the server's compression level."""

    def applies_to(self, method: str) -> bool:
        return True

    async def around_unary(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        reply = await behavior(request, context)
        if not worth_compressing(reply):
            context.disable_next_message_compression()
        return reply

    async def around_stream(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        # Streams written with context.write go through the wrapper; yielded messages are opted out here.
        async for message in run_behavior_stream(behavior, request, _UncompressedWrites(context)):
            context.disable_next_message_compression()
            yield message
