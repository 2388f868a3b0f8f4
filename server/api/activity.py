"""``workspace.v1.ActivityService``."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from workspace.v1 import activity_pb2, activity_pb2_grpc, chat_pb2

from ..auth.interceptor import caller
from ..domain.activity import Activity, ActivityEntry, ActivityFilter, check_filter, require_admin
from ..domain.errors import Validator
from ..events.streams import ActivityStreams, Heartbeat
from . import paging
from .convert import timestamp


def entry_to_proto(entry: ActivityEntry) -> activity_pb2.ActivityEntry:
    """One entry, whether it comes from a row (list, replay) or from its event (live): the same message."""
    return activity_pb2.ActivityEntry(
        id=entry.id,
        create_time=timestamp(entry.created_at),
        actor_id=entry.actor_id,
        actor_username=entry.actor_username,
        action=entry.action,
        resource_type=entry.resource_type,
        resource_id=entry.resource_id,
        detail=entry.detail,
    )


def _time(v: Validator, request: activity_pb2.ListActivityRequest, field: str) -> datetime | None:
    if not request.HasField(field):
        return None
    try:
        return getattr(request, field).ToDatetime(UTC)
    except (ValueError, OverflowError):
        v.add(field, "is not a valid time")
        return None


def _filter(v: Validator, request: activity_pb2.ListActivityRequest) -> ActivityFilter:
    activity_filter = ActivityFilter(
        actor_id=request.actor_id,
        action=request.action,
        resource_type=request.resource_type,
        resource_id=request.resource_id,
        start=_time(v, request, "start_time"),
        end=_time(v, request, "end_time"),
    )
    check_filter(v, activity_filter)
    return activity_filter


class ActivityServicer(activity_pb2_grpc.ActivityServiceServicer):
    def __init__(self, activity: Activity, streams: ActivityStreams) -> None:
        self._activity = activity
        self._streams = streams

    async def ListActivity(
        self, request: activity_pb2.ListActivityRequest, context: grpc.aio.ServicerContext
    ) -> activity_pb2.ListActivityResponse:
        actor = caller()
        require_admin(actor)  # before anything about the request is said to someone who may not read the log
        v = Validator()
        size = paging.page_size(v, request.page_size)
        activity_filter = _filter(v, request)
        filters = {
            "list": "activity",
            "actor_id": request.actor_id,
            "action": request.action,
            "resource_type": request.resource_type,
            "resource_id": request.resource_id,
            # The parsed times: a Timestamp out of range fails ToJsonString (it is refused above, not here).
            "start": activity_filter.start.isoformat() if activity_filter.start else "",
            "end": activity_filter.end.isoformat() if activity_filter.end else "",
        }
        before = paging.decode_id(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._activity.list(actor, activity_filter, before_id=before, limit=size)
        token = paging.encode_token(str(page.next_before), filters) if page.next_before else ""
        return activity_pb2.ListActivityResponse(
            entries=[entry_to_proto(e) for e in page.entries], next_page_token=token
        )

    async def StreamActivity(
        self, request: activity_pb2.StreamActivityRequest, context: grpc.aio.ServicerContext
    ) -> None:
        actor = caller()
        require_admin(actor)  # refused before anything is sent
        v = Validator()
        v.check(request.after_id >= 0, "after_id", "must be an event id, or 0 to start live")
        v.raise_if_any()
        # Written with context.write, as StreamEvents does (see there).
        async with self._streams.open(actor, request.after_id) as items:
            async for item in items:
                if isinstance(item, Heartbeat):
                    beat = chat_pb2.Heartbeat(last_event_id=item.last_event_id, live=item.live)
                    await context.write(activity_pb2.StreamActivityResponse(heartbeat=beat))
                else:
                    await context.write(activity_pb2.StreamActivityResponse(entry=entry_to_proto(item)))
