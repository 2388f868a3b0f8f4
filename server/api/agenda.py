"""``workspace.v1.AgendaService``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.api import httpbody_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from workspace.v1 import agenda_pb2, agenda_pb2_grpc

from ..auth.interceptor import caller
from ..domain.agenda import (
    UPDATABLE_FIELDS,
    Agenda,
    AgendaEvent,
    EventFields,
    ListKey,
    Occurrence,
    RangeQuery,
    check_range,
    zone_named,
)
from ..domain.errors import Validator
from ..domain.ics import CONTENT_TYPE, render
from ..domain.ports import Clock
from ..domain.recurrence import Frequency, Recurrence, rrule_text, weekdays_of
from . import paging
from .convert import check_id, date_from_proto, date_to_proto, optional_date, timestamp

DEFAULT_PAGE_SIZE = 250
#: The name ExportCalendar's file is saved under.
FILE_NAME = "agenda.ics"
MAX_PAGE_SIZE = 1000

FREQUENCY_FROM_PROTO = {
    agenda_pb2.RECURRENCE_FREQUENCY_DAILY: Frequency.DAILY,
    agenda_pb2.RECURRENCE_FREQUENCY_WEEKLY: Frequency.WEEKLY,
    agenda_pb2.RECURRENCE_FREQUENCY_MONTHLY: Frequency.MONTHLY,
    agenda_pb2.RECURRENCE_FREQUENCY_YEARLY: Frequency.YEARLY,
}
FREQUENCY_TO_PROTO = {v: k for k, v in FREQUENCY_FROM_PROTO.items()}
#: ``Weekday`` values are 1 (Monday) to 7 (Sunday); Python's weekdays 0 to 6.
WEEKDAY_OFFSET = 1


# --- proto to domain ---------------------------------------------------------------------------------------


def _instant(v: Validator, field: str, value: Timestamp) -> datetime | None:
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        v.add(field, "is not a valid time")
        return None


def _recurrence(v: Validator, event: agenda_pb2.AgendaEvent) -> Recurrence | None:
    if not event.HasField("recurrence"):
        return None
    given, where = event.recurrence, "event.recurrence"
    frequency = FREQUENCY_FROM_PROTO.get(given.frequency)
    if frequency is None:
        v.add(f"{where}.frequency", "is required: DAILY, WEEKLY, MONTHLY or YEARLY")
    weekdays = []
    for day in given.weekdays:
        if 1 <= day <= 7:
            weekdays.append(day - WEEKDAY_OFFSET)
        else:
            v.add(f"{where}.weekdays", "must be weekdays, WEEKDAY_MONDAY to WEEKDAY_SUNDAY")
            break
    until = optional_date(v, f"{where}.until_date", given, "until_date")
    exceptions = [date_from_proto(v, f"{where}.exception_dates", day) for day in given.exception_dates]
    if frequency is None:
        return None
    return Recurrence(
        frequency=frequency,
        interval=given.interval or 1,
        weekdays=tuple(weekdays),
        until=until,
        count=given.count or None,
        exceptions=tuple(day for day in exceptions if day is not None),
    )


#: Each ``update_mask`` path: the ``EventFields`` attribute it sets, and how it is read from the request.
READERS: dict[str, tuple[str, Callable[[Validator, agenda_pb2.AgendaEvent], object]]] = {
    "title": ("title", lambda v, e: e.title),
    "description": ("description", lambda v, e: e.description),
    "location": ("location", lambda v, e: e.location),
    "color": ("color", lambda v, e: e.color),
    "start_time": (
        "start",
        lambda v, e: _instant(v, "event.start_time", e.start_time) if e.HasField("start_time") else None,
    ),
    "end_time": ("end", lambda v, e: _instant(v, "event.end_time", e.end_time) if e.HasField("end_time") else None),
    "start_date": ("start_date", lambda v, e: optional_date(v, "event.start_date", e, "start_date")),
    "end_date": ("end_date", lambda v, e: optional_date(v, "event.end_date", e, "end_date")),
    "time_zone": ("time_zone", lambda v, e: e.time_zone),
    "recurrence": ("recurrence", _recurrence),
    "shared_with": ("shared_with", lambda v, e: tuple(e.shared_with)),
    "shared_with_everyone": ("shared_with_everyone", lambda v, e: e.shared_with_everyone),
}
assert set(READERS) == UPDATABLE_FIELDS


def fields_from_proto(v: Validator, event: agenda_pb2.AgendaEvent, paths: list[str] | None = None) -> dict[str, object]:
    """The ``EventFields`` attributes the request gives (all of them, or those ``paths`` name)."""
    return {READERS[path][0]: READERS[path][1](v, event) for path in (paths if paths is not None else READERS)}


# --- domain to proto ---------------------------------------------------------------------------------------


def recurrence_to_proto(event: AgendaEvent) -> agenda_pb2.Recurrence | None:
    recurrence = event.fields.recurrence
    if recurrence is None:
        return None
    weekdays = weekdays_of(event.fields.schedule) if recurrence.frequency is Frequency.WEEKLY else ()
    return agenda_pb2.Recurrence(
        frequency=FREQUENCY_TO_PROTO[recurrence.frequency],
        interval=recurrence.interval,
        weekdays=[day + WEEKDAY_OFFSET for day in weekdays],  # type: ignore[misc]
        until_date=date_to_proto(recurrence.until),
        count=recurrence.count or 0,
        exception_dates=[date_to_proto(day) for day in recurrence.exceptions],
    )


def event_to_proto(event: AgendaEvent, viewer_id: int) -> agenda_pb2.AgendaEvent:
    fields = event.fields
    return agenda_pb2.AgendaEvent(
        id=event.id,
        title=fields.title,
        description=fields.description,
        location=fields.location,
        color=fields.color,
        start_time=timestamp(fields.start),
        end_time=timestamp(fields.end),
        start_date=date_to_proto(fields.start_date),
        end_date=date_to_proto(fields.end_date),
        time_zone=fields.time_zone,
        all_day=fields.all_day,
        recurrence=recurrence_to_proto(event),
        rrule=rrule_text(fields.schedule),
        owner_id=event.owner_id,
        shared_with=list(fields.shared_with),
        shared_with_everyone=fields.shared_with_everyone,
        etag=event.etag,
        read_only=event.owner_id != viewer_id,
        create_time=timestamp(event.created_at),
        update_time=timestamp(event.updated_at),
    )


def occurrence_to_proto(occurrence: Occurrence, viewer_id: int) -> agenda_pb2.Occurrence:
    placed, event = occurrence.placed, occurrence.event
    proto = agenda_pb2.Occurrence(
        start_time=timestamp(placed.start),
        end_time=timestamp(placed.end),
        start_date=date_to_proto(placed.start_date),
        end_date=date_to_proto(placed.end_date),
        all_day=placed.start_date is not None,
    )
    if event is None:
        proto.kind = agenda_pb2.OCCURRENCE_KIND_HOLIDAY
        proto.title = occurrence.holiday
        proto.read_only = True
        return proto
    fields = event.fields
    proto.kind = agenda_pb2.OCCURRENCE_KIND_EVENT
    proto.event_id = event.id
    proto.title = fields.title
    proto.location = fields.location
    proto.color = fields.color
    proto.time_zone = fields.time_zone
    proto.read_only = event.owner_id != viewer_id
    proto.recurring = fields.recurrence is not None
    proto.owner_id = event.owner_id
    proto.etag = event.etag
    return proto


# --- requests ----------------------------------------------------------------------------------------------


def _page_size(v: Validator, requested: int) -> int:
    if requested < 0:
        v.add("page_size", "must not be negative")
    elif requested > MAX_PAGE_SIZE:
        v.add("page_size", f"must be at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def _decode_key(v: Validator, token: str, filters: dict[str, object]) -> ListKey | None:
    after = paging.decode_token(v, token, filters)
    if after is None:
        return None
    try:
        micros, rank, event_id, title = json.loads(after)
        if isinstance(micros, int) and isinstance(rank, int) and isinstance(event_id, int) and isinstance(title, str):
            return micros, rank, event_id, title
    except (ValueError, TypeError):
        pass
    v.add("page_token", "is not a token this server issued")
    return None


def _mask(v: Validator, paths: list[str]) -> None:
    names = ", ".join(sorted(UPDATABLE_FIELDS))
    if v.check(bool(paths), "update_mask", f"is required: name the fields to change ({names})"):
        for path in paths:
            v.check(path in UPDATABLE_FIELDS, "update_mask", f"cannot update {path!r}; allowed: {names}")


class AgendaServicer(agenda_pb2_grpc.AgendaServiceServicer):
    def __init__(self, agenda: Agenda, clock: Clock) -> None:
        self._agenda = agenda
        self._clock = clock

    async def ListEvents(
        self, request: agenda_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> agenda_pb2.ListEventsResponse:
        v = Validator()
        start = _instant(v, "start_time", request.start_time) if request.HasField("start_time") else None
        end = _instant(v, "end_time", request.end_time) if request.HasField("end_time") else None
        if not v.violations:
            check_range(v, start, end, self._agenda.max_range_days)
        viewer = zone_named(v, "time_zone", request.time_zone or "UTC")
        size = _page_size(v, request.page_size)
        filters = {
            "list": "agenda",
            "start": request.start_time.ToJsonString() if start else "",
            "end": request.end_time.ToJsonString() if end else "",
            "zone": request.time_zone or "UTC",
        }
        after = _decode_key(v, request.page_token, filters)
        v.raise_if_any()
        assert start is not None and end is not None and viewer is not None
        actor = caller()
        page = await self._agenda.list_occurrences(actor, RangeQuery(start, end, viewer, after=after, limit=size))
        token = paging.encode_token(json.dumps(page.next_after), filters) if page.next_after else ""
        return agenda_pb2.ListEventsResponse(
            occurrences=[occurrence_to_proto(o, actor.user_id) for o in page.occurrences], next_page_token=token
        )

    async def GetEvent(
        self, request: agenda_pb2.GetEventRequest, context: grpc.aio.ServicerContext
    ) -> agenda_pb2.GetEventResponse:
        v = Validator()
        check_id(v, "event_id", request.event_id)
        v.raise_if_any()
        actor = caller()
        event = await self._agenda.get(actor, request.event_id)
        return agenda_pb2.GetEventResponse(event=event_to_proto(event, actor.user_id))

    async def CreateEvent(
        self, request: agenda_pb2.CreateEventRequest, context: grpc.aio.ServicerContext
    ) -> agenda_pb2.CreateEventResponse:
        v = Validator()
        if not request.HasField("event"):
            v.add("event", "is required")
            v.raise_if_any()
        fields = fields_from_proto(v, request.event)
        v.raise_if_any()
        actor = caller()
        event = await self._agenda.create(actor, EventFields(**fields))  # type: ignore[arg-type]
        return agenda_pb2.CreateEventResponse(event=event_to_proto(event, actor.user_id))

    async def UpdateEvent(
        self, request: agenda_pb2.UpdateEventRequest, context: grpc.aio.ServicerContext
    ) -> agenda_pb2.UpdateEventResponse:
        v = Validator()
        if not request.HasField("event"):
            v.add("event", "is required")
            v.raise_if_any()
        check_id(v, "event.id", request.event.id)
        v.check(bool(request.event.etag), "event.etag", "is required: send the etag of the version you changed")
        paths = list(dict.fromkeys(request.update_mask.paths))
        _mask(v, paths)
        v.raise_if_any()
        changes = fields_from_proto(v, request.event, paths)
        v.raise_if_any()
        actor = caller()
        event = await self._agenda.update(actor, request.event.id, request.event.etag, changes)
        return agenda_pb2.UpdateEventResponse(event=event_to_proto(event, actor.user_id))

    async def DeleteEvent(
        self, request: agenda_pb2.DeleteEventRequest, context: grpc.aio.ServicerContext
    ) -> agenda_pb2.DeleteEventResponse:
        v = Validator()
        check_id(v, "event_id", request.event_id)
        v.raise_if_any()
        await self._agenda.delete(caller(), request.event_id, request.etag)
        return agenda_pb2.DeleteEventResponse()

    async def ExportCalendar(
        self, request: agenda_pb2.ExportCalendarRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        events = await self._agenda.export(caller())
        # Thousands of events take a while to write: off the event loop, as password hashing is.
        data = await asyncio.to_thread(render, events, self._clock())
        # Through the gateway, initial metadata become response headers: browsers save the file under this name.
        await context.send_initial_metadata((("content-disposition", f'attachment; filename="{FILE_NAME}"'),))
        return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=data)
