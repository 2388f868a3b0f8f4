"""``workspace.v1.PresenceService``."""

from __future__ import annotations

import grpc
from workspace.v1 import presence_pb2, presence_pb2_grpc

from ..auth.interceptor import caller
from ..domain.errors import Validator
from ..domain.presence import PRESENCE_BATCH_MAX, Presence, check_status_text
from .convert import check_id, presence_to_proto

UPDATABLE = ("state", "status_text")


class PresenceServicer(presence_pb2_grpc.PresenceServiceServicer):
    def __init__(self, presence: Presence) -> None:
        self._presence = presence

    async def GetPresence(
        self, request: presence_pb2.GetPresenceRequest, context: grpc.aio.ServicerContext
    ) -> presence_pb2.GetPresenceResponse:
        v = Validator()
        if not request.user_ids:
            v.add("user_ids", "is required: the people to ask about")
        elif len(request.user_ids) > PRESENCE_BATCH_MAX:
            v.add("user_ids", f"at most {PRESENCE_BATCH_MAX} people at a time")
        for index, user_id in enumerate(request.user_ids):
            if user_id <= 0:
                v.add(f"user_ids[{index}]", "must be a positive account id")
        v.raise_if_any()
        records = await self._presence.get(caller(), list(request.user_ids))
        return presence_pb2.GetPresenceResponse(presences=[presence_to_proto(r) for r in records])

    async def UpdatePresence(
        self, request: presence_pb2.UpdatePresenceRequest, context: grpc.aio.ServicerContext
    ) -> presence_pb2.UpdatePresenceResponse:
        v = Validator()
        paths = list(request.update_mask.paths)
        if v.check(bool(paths), "update_mask", f"is required: name the fields to change ({', '.join(UPDATABLE)})"):
            for path in paths:
                v.check(path in UPDATABLE, "update_mask", f"cannot update {path!r}; allowed: {', '.join(UPDATABLE)}")
        away = None
        if "state" in paths:
            state = request.presence.state
            if state not in (presence_pb2.PRESENCE_STATE_ONLINE, presence_pb2.PRESENCE_STATE_AWAY):
                v.add(
                    "presence.state",
                    "must be PRESENCE_STATE_ONLINE or PRESENCE_STATE_AWAY (offline follows from streams)",
                )
            away = state == presence_pb2.PRESENCE_STATE_AWAY
        if "status_text" in paths:
            check_status_text(v, request.presence.status_text)
        v.raise_if_any()
        status_text = request.presence.status_text if "status_text" in paths else None
        record = await self._presence.update(caller(), away=away, status_text=status_text)
        return presence_pb2.UpdatePresenceResponse(presence=presence_to_proto(record))

    async def SendTyping(
        self, request: presence_pb2.SendTypingRequest, context: grpc.aio.ServicerContext
    ) -> presence_pb2.SendTypingResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        v.raise_if_any()
        await self._presence.typing(caller(), request.conversation_id)
        return presence_pb2.SendTypingResponse()
