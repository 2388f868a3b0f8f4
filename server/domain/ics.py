"""Agenda events as an iCalendar file (RFC 5545), written with the ``icalendar`` package.

Timed events carry DTSTART/DTEND with the event's TZID and the matching VTIMEZONE definitions (so any
calendar program places them without its own zone database); all-day events are ``VALUE=DATE`` with DTEND
exclusive, as stored. RRULE is the event's rule, EXDATE its exceptions (at the occurrence's local start
time for timed events). Each event's UID is stable (``agenda-event-<id>@workspace``) and SEQUENCE follows
its revision, so a program that imports the file again updates the events instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import icalendar

from .agenda import AgendaEvent
from .recurrence import rrule_text

PRODUCT_ID = "-//Workspace//Agenda//EN"
CONTENT_TYPE = "text/calendar; charset=utf-8"


def event_uid(event_id: int) -> str:
    return f"agenda-event-{event_id}@workspace"


def _component(event: AgendaEvent, stamp: datetime) -> icalendar.Event:
    fields = event.fields
    schedule = fields.schedule
    component = icalendar.Event()
    component.add("uid", event_uid(event.id))
    component.add("dtstamp", stamp)
    component.add("created", event.created_at)
    component.add("last-modified", event.updated_at)
    component.add("sequence", event.revision - 1)
    component.add("summary", fields.title)
    if fields.description:
        component.add("description", fields.description)
    if fields.location:
        component.add("location", fields.location)
    if fields.color:
        # RFC 7986's COLOR takes CSS colour names only: the exact #RRGGBB goes in an extension property.
        component.add("x-workspace-color", fields.color)
    if schedule.all_day:
        component.add("dtstart", fields.start_date)
        component.add("dtend", fields.end_date)
    else:
        assert fields.start is not None and fields.end is not None
        zone = schedule.zone
        component.add("dtstart", fields.start.astimezone(zone))
        component.add("dtend", fields.end.astimezone(zone))
    recurrence = fields.recurrence
    if recurrence is not None:
        component.add("rrule", icalendar.vRecur.from_ical(rrule_text(schedule)))
        if recurrence.exceptions:
            if schedule.all_day:
                component.add("exdate", list(recurrence.exceptions))
            else:
                wall = schedule.local_start().timetz()
                exdates = [datetime.combine(day, wall).replace(tzinfo=schedule.zone) for day in recurrence.exceptions]
                component.add("exdate", exdates)
    return component


def render(events: Iterable[AgendaEvent], now: datetime) -> bytes:
    """One VCALENDAR with a VEVENT per event and the VTIMEZONEs they use."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "Workspace agenda")
    stamp = now.astimezone(UTC)
    first = date(1970, 1, 1)
    for event in events:
        calendar.add_component(_component(event, stamp))
        if event.fields.start is not None:
            first = min(first, event.fields.start.date() - timedelta(days=1))
    # The VTIMEZONEs' transitions, from the earliest event to some decades ahead (series may go on forever).
    last = max(date(2038, 1, 1), stamp.date().replace(day=1) + timedelta(days=30 * 366))
    calendar.add_missing_timezones(first_date=first, last_date=last)
    return calendar.to_ical()
