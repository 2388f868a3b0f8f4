"""AgendaService: timed and all-day events, repeating by RFC 5545 rules in their own time zone, shared with
some people or everyone, changed only by their owner and only with the current etag; ListEvents expands
every occurrence of a bounded range and adds the public holidays; ExportCalendar writes an iCalendar file."""

from __future__ import annotations

import json
import random
import re
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import icalendar
import pytest
from dateutil import rrule
from google.api import httpbody_pb2
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2
from workspace.v1 import activity_pb2, activity_pb2_grpc, agenda_pb2, agenda_pb2_grpc

from server.domain.recurrence import Frequency, Recurrence, Schedule, local_starts

from .api import Client, Person, create_person, disable, expect_error, reason, violations
from .gateway import GatewayProcess, fetch
from .servers import ADMIN_PASSWORD, ServerProcess

NOWHERE = 2**62
PARIS = ZoneInfo("Europe/Paris")
EVENT = agenda_pb2.OCCURRENCE_KIND_EVENT
HOLIDAY = agenda_pb2.OCCURRENCE_KIND_HOLIDAY


def stub(client: Client) -> agenda_pb2_grpc.AgendaServiceStub:
    return agenda_pb2_grpc.AgendaServiceStub(client.channel)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def as_date(value: date_pb2.Date) -> date:
    return date(value.year, value.month, value.day)


def as_utc(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def timed(title: str, start: datetime, end: datetime, zone: str = "Europe/Paris", **fields) -> agenda_pb2.AgendaEvent:
    return agenda_pb2.AgendaEvent(title=title, start_time=ts(start), end_time=ts(end), time_zone=zone, **fields)


def all_day(title: str, first: date, end: date, **fields) -> agenda_pb2.AgendaEvent:
    """An all-day event from ``first`` to ``end`` exclusive."""
    return agenda_pb2.AgendaEvent(title=title, start_date=day(first), end_date=day(end), **fields)


def create(client: Client, event: agenda_pb2.AgendaEvent) -> agenda_pb2.AgendaEvent:
    return stub(client).CreateEvent(agenda_pb2.CreateEventRequest(event=event), metadata=client.md, timeout=10).event


def get(client: Client, event_id: int) -> agenda_pb2.AgendaEvent:
    return stub(client).GetEvent(agenda_pb2.GetEventRequest(event_id=event_id), metadata=client.md, timeout=10).event


def update(client: Client, event: agenda_pb2.AgendaEvent, paths: Sequence[str]) -> agenda_pb2.AgendaEvent:
    request = agenda_pb2.UpdateEventRequest(event=event, update_mask=FieldMask(paths=list(paths)))
    return stub(client).UpdateEvent(request, metadata=client.md, timeout=10).event


def occurrences(
    client: Client, start: datetime, end: datetime, zone: str = "UTC", page_size: int = 0
) -> list[agenda_pb2.Occurrence]:
    """Every page of ListEvents for the range."""
    found, token = [], ""
    while True:
        request = agenda_pb2.ListEventsRequest(
            start_time=ts(start), end_time=ts(end), time_zone=zone, page_size=page_size, page_token=token
        )
        reply = stub(client).ListEvents(request, metadata=client.md, timeout=30)
        found += reply.occurrences
        token = reply.next_page_token
        if not token:
            return found


def starts_of(client: Client, event_id: int, start: datetime, end: datetime, zone: str = "UTC") -> list[datetime]:
    """The UTC starts of one event's occurrences in the range."""
    return [as_utc(o.start_time) for o in occurrences(client, start, end, zone) if o.event_id == event_id]


def invalid(call, request, client: Client) -> dict[str, str]:
    return violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, request, metadata=client.md))


def weekly(**fields) -> agenda_pb2.Recurrence:
    return agenda_pb2.Recurrence(frequency=agenda_pb2.RECURRENCE_FREQUENCY_WEEKLY, **fields)


def daily(**fields) -> agenda_pb2.Recurrence:
    return agenda_pb2.Recurrence(frequency=agenda_pb2.RECURRENCE_FREQUENCY_DAILY, **fields)


@pytest.fixture
def other(server: ServerProcess, admin: Client):
    """A second ordinary person, logged in."""
    p = create_person(admin, server.address)
    yield p
    p.client.close()


# --- creating, reading, listing ---------------------------------------------------------------------------


def test_a_timed_event_is_stored_trimmed_and_read_back_with_an_etag(person: Person) -> None:
    client = person.client
    start = datetime(2026, 6, 3, 14, 0, tzinfo=PARIS)
    made = create(
        client,
        timed(
            "  Planning  ",
            start,
            start + timedelta(hours=1, minutes=30),
            description="Agenda:\n- budget\n- hiring",
            location="Room 4",
            color="#3a87ad",
        ),
    )
    assert made.id > 0 and made.etag and made.owner_id == person.user.id and not made.read_only
    assert (made.title, made.color, made.location, made.time_zone) == ("Planning", "#3A87AD", "Room 4", "Europe/Paris")
    assert made.description == "Agenda:\n- budget\n- hiring"
    assert as_utc(made.start_time) == utc(2026, 6, 3, 12) and as_utc(made.end_time) == utc(2026, 6, 3, 13, 30)
    assert not made.all_day and not made.HasField("start_date") and not made.HasField("recurrence")
    assert made.rrule == "" and made.HasField("create_time")
    assert get(client, made.id) == made

    found = [o for o in occurrences(client, utc(2026, 6, 1), utc(2026, 6, 8)) if o.kind == EVENT]
    assert len(found) == 1
    (occurrence,) = found
    assert (occurrence.event_id, occurrence.title, occurrence.color, occurrence.etag) == (
        made.id,
        "Planning",
        "#3A87AD",
        made.etag,
    )
    assert as_utc(occurrence.start_time) == utc(2026, 6, 3, 12) and as_utc(occurrence.end_time) == utc(
        2026, 6, 3, 13, 30
    )
    assert not occurrence.read_only and not occurrence.recurring and not occurrence.all_day


def test_an_all_day_event_is_the_same_dates_for_every_viewer(person: Person) -> None:
    client = person.client
    made = create(client, all_day("Conference", date(2026, 7, 20), date(2026, 7, 22)))
    assert made.all_day and not made.HasField("start_time") and made.time_zone == ""
    week = (utc(2026, 7, 18), utc(2026, 7, 25))
    seen = {}
    for zone in ("Pacific/Auckland", "America/Los_Angeles"):
        (entry,) = [o for o in occurrences(client, *week, zone=zone) if o.event_id == made.id]
        assert entry.all_day and (as_date(entry.start_date), as_date(entry.end_date)) == (
            date(2026, 7, 20),
            date(2026, 7, 22),
        )
        seen[zone] = as_utc(entry.start_time)
    # The same dates, each placed at the viewer's own midnight.
    assert seen["Pacific/Auckland"] == datetime(2026, 7, 20, tzinfo=ZoneInfo("Pacific/Auckland"))
    assert seen["America/Los_Angeles"] == datetime(2026, 7, 20, tzinfo=ZoneInfo("America/Los_Angeles"))


def test_which_all_day_events_meet_a_range_is_decided_in_the_viewers_zone(person: Person) -> None:
    client = person.client
    made = create(client, all_day("Off", date(2026, 7, 22), date(2026, 7, 23)))
    # 12:00-13:00 UTC on 21 July is 00:00-01:00 on 22 July in Auckland (UTC+12), but 05:00-06:00 on 21 July in
    # Los Angeles (UTC-7).
    hour = (utc(2026, 7, 21, 12), utc(2026, 7, 21, 13))
    assert [o.event_id for o in occurrences(client, *hour, zone="Pacific/Auckland") if o.kind == EVENT] == [made.id]
    assert [o.event_id for o in occurrences(client, *hour, zone="America/Los_Angeles") if o.kind == EVENT] == []


def test_an_event_can_change_from_timed_to_all_day_and_back(person: Person) -> None:
    client = person.client
    made = create(client, timed("Move", utc(2026, 9, 1, 8), utc(2026, 9, 1, 9)))
    paths = ["start_time", "end_time", "start_date", "end_date"]
    whole = update(client, all_day("", date(2026, 9, 1), date(2026, 9, 2), id=made.id, etag=made.etag), paths)
    assert whole.all_day and as_date(whole.start_date) == date(2026, 9, 1) and not whole.HasField("start_time")
    back = update(client, timed("", utc(2026, 9, 1, 10), utc(2026, 9, 1, 11), id=made.id, etag=whole.etag), paths)
    assert not back.all_day and as_utc(back.start_time) == utc(2026, 9, 1, 10) and back.title == "Move"


# --- bad input --------------------------------------------------------------------------------------------

START = utc(2026, 5, 4, 8)
END = utc(2026, 5, 4, 9)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (timed("", START, END), "event.title"),
        (timed("   ", START, END), "event.title"),
        (timed("x" * 201, START, END), "event.title"),
        (timed("t", START, END, description="d" * 5001), "event.description"),
        (timed("t", START, END, location="l" * 201), "event.location"),
        (timed("t", START, END, color="red"), "event.color"),
        (timed("t", START, END, color="#12345"), "event.color"),
        (timed("t", START, END, color="#GG0000"), "event.color"),
        (timed("t", START, END, zone="Mars/Olympus_Mons"), "event.time_zone"),
        (timed("t", START, END, zone="Europe/../../etc/passwd"), "event.time_zone"),
        (timed("t", START, END, zone=""), "event.time_zone"),
        (timed("t", END, START), "event.end_time"),
        (timed("t", START, START), "event.end_time"),
        (agenda_pb2.AgendaEvent(title="t", time_zone="UTC"), "event.start_time"),
        (agenda_pb2.AgendaEvent(title="t", start_time=ts(START), time_zone="UTC"), "event.end_time"),
        (all_day("t", date(2026, 5, 4), date(2026, 5, 4)), "event.end_date"),
        (all_day("t", date(2026, 5, 4), date(2026, 5, 3)), "event.end_date"),
        (
            agenda_pb2.AgendaEvent(
                title="t", start_date=date_pb2.Date(year=2026, month=2, day=30), end_date=day(date(2026, 3, 2))
            ),
            "event.start_date",
        ),
        (all_day("t", date(2026, 5, 4), date(2026, 5, 5), start_time=ts(START)), "event.start_date"),
        (timed("t", utc(1800, 1, 1), utc(1800, 1, 2)), "event.start_time"),
        (timed("t", START, END, recurrence=agenda_pb2.Recurrence(interval=2)), "event.recurrence.frequency"),
        (timed("t", START, END, recurrence=daily(interval=-1)), "event.recurrence.interval"),
        (timed("t", START, END, recurrence=daily(count=1001)), "event.recurrence.count"),
        (timed("t", START, END, recurrence=daily(count=3, until_date=day(date(2026, 6, 1)))), "event.recurrence.count"),
        (timed("t", START, END, recurrence=daily(until_date=day(date(2026, 5, 1)))), "event.recurrence.until_date"),
        (timed("t", START, END, recurrence=daily(weekdays=[agenda_pb2.WEEKDAY_MONDAY])), "event.recurrence.weekdays"),
        # 4 May 2026 is a Monday: a weekly rule on Tuesdays only would not include the event itself.
        (timed("t", START, END, recurrence=weekly(weekdays=[agenda_pb2.WEEKDAY_TUESDAY])), "event.recurrence.weekdays"),
        (timed("t", START, END, shared_with=[-3]), "event.shared_with"),
    ],
)
def test_a_bad_event_is_refused_with_the_field_named(person: Person, event: agenda_pb2.AgendaEvent, field: str) -> None:
    request = agenda_pb2.CreateEventRequest(event=event)
    assert field in invalid(stub(person.client).CreateEvent, request, person.client)


def test_every_bad_field_is_named_at_once_and_a_missing_event_too(person: Person) -> None:
    client = person.client
    bad = timed("", START, END, color="blue", location="l" * 300)
    assert set(invalid(stub(client).CreateEvent, agenda_pb2.CreateEventRequest(event=bad), client)) == {
        "event.title",
        "event.color",
        "event.location",
    }
    assert "event" in invalid(stub(client).CreateEvent, agenda_pb2.CreateEventRequest(), client)


def test_sharing_names_existing_enabled_people_other_than_the_owner(
    server: ServerProcess, admin: Client, person: Person, other: Person
) -> None:
    client = person.client
    gone = create_person(admin, server.address)
    disable(admin, gone.user.id)
    request = agenda_pb2.CreateEventRequest(
        event=timed("t", START, END, shared_with=[other.user.id, NOWHERE, gone.user.id])
    )
    found = invalid(stub(client).CreateEvent, request, client)
    named = set(re.findall(r"\d+", found["event.shared_with"].split(":", 1)[-1]))
    assert {str(NOWHERE), str(gone.user.id)} <= named and str(other.user.id) not in named
    mine = agenda_pb2.CreateEventRequest(event=timed("t", START, END, shared_with=[person.user.id]))
    assert "event.shared_with" in invalid(stub(client).CreateEvent, mine, client)
    made = create(client, timed("t", START, END, shared_with=[other.user.id, other.user.id]))
    assert list(made.shared_with) == [other.user.id]
    gone.client.close()


# --- who sees and changes what ------------------------------------------------------------------------------


def test_nobody_else_sees_an_event_that_is_not_shared_with_them(person: Person, other: Person) -> None:
    made = create(person.client, timed("Private", START, END))
    theirs = other.client
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        stub(theirs).GetEvent,
        agenda_pb2.GetEventRequest(event_id=made.id),
        metadata=theirs.md,
    )
    change = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, title="mine now", etag=made.etag),
        update_mask=FieldMask(paths=["title"]),
    )
    expect_error(grpc.StatusCode.NOT_FOUND, stub(theirs).UpdateEvent, change, metadata=theirs.md)
    delete = agenda_pb2.DeleteEventRequest(event_id=made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, stub(theirs).DeleteEvent, delete, metadata=theirs.md)
    assert all(o.event_id != made.id for o in occurrences(theirs, utc(2026, 5, 1), utc(2026, 5, 8)))
    assert get(person.client, made.id).title == "Private"


def test_people_it_is_shared_with_read_it_but_only_the_owner_changes_it(
    server: ServerProcess, admin: Client, person: Person, other: Person
) -> None:
    made = create(person.client, timed("Review", START, END, shared_with=[other.user.id]))
    theirs = other.client
    seen = get(theirs, made.id)
    assert seen.read_only and seen.title == "Review" and seen.etag == made.etag
    (entry,) = [o for o in occurrences(theirs, utc(2026, 5, 1), utc(2026, 5, 8)) if o.event_id == made.id]
    assert entry.read_only and entry.owner_id == person.user.id
    change = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, title="Hijacked", etag=made.etag),
        update_mask=FieldMask(paths=["title"]),
    )
    expect_error(grpc.StatusCode.PERMISSION_DENIED, stub(theirs).UpdateEvent, change, metadata=theirs.md)
    delete = agenda_pb2.DeleteEventRequest(event_id=made.id)
    expect_error(grpc.StatusCode.PERMISSION_DENIED, stub(theirs).DeleteEvent, delete, metadata=theirs.md)
    # An administrator who is not in the list does not see it either.
    expect_error(
        grpc.StatusCode.NOT_FOUND, stub(admin).GetEvent, agenda_pb2.GetEventRequest(event_id=made.id), metadata=admin.md
    )
    assert get(person.client, made.id).title == "Review"


def test_an_event_shared_with_everyone_is_seen_by_everyone(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    made = create(person.client, timed("All hands", utc(2031, 1, 6, 9), utc(2031, 1, 6, 10), shared_with_everyone=True))
    newcomer = create_person(admin, server.address)
    try:
        assert get(newcomer.client, made.id).read_only
        found = occurrences(newcomer.client, utc(2031, 1, 5), utc(2031, 1, 7))
        assert [o.event_id for o in found if o.kind == EVENT] == [made.id]
    finally:
        update(person.client, agenda_pb2.AgendaEvent(id=made.id, etag=made.etag), ["shared_with_everyone"])
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        stub(newcomer.client).GetEvent,
        agenda_pb2.GetEventRequest(event_id=made.id),
        metadata=newcomer.client.md,
    )
    newcomer.client.close()


@pytest.mark.parametrize("event_id", [0, -1, NOWHERE])
def test_unknown_or_bad_ids(person: Person, event_id: int) -> None:
    client = person.client
    code = grpc.StatusCode.NOT_FOUND if event_id > 0 else grpc.StatusCode.INVALID_ARGUMENT
    expect_error(code, stub(client).GetEvent, agenda_pb2.GetEventRequest(event_id=event_id), metadata=client.md)
    expect_error(code, stub(client).DeleteEvent, agenda_pb2.DeleteEventRequest(event_id=event_id), metadata=client.md)
    change = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=event_id, title="x", etag="1-1"), update_mask=FieldMask(paths=["title"])
    )
    expect_error(code, stub(client).UpdateEvent, change, metadata=client.md)


# --- updates and etags ----------------------------------------------------------------------------------------


def test_an_update_changes_only_the_masked_fields_and_the_etag(person: Person, other: Person) -> None:
    client = person.client
    made = create(client, timed("Budget", START, END, location="Room 1", color="#112233"))
    changed = update(
        client,
        agenda_pb2.AgendaEvent(
            id=made.id, etag=made.etag, title=" Budget 2027 ", location="ignored", shared_with=[other.user.id]
        ),
        ["title", "shared_with"],
    )
    assert (changed.title, changed.location, changed.color) == ("Budget 2027", "Room 1", "#112233")
    assert list(changed.shared_with) == [other.user.id] and changed.etag != made.etag
    assert get(client, made.id) == changed
    cleared = update(client, agenda_pb2.AgendaEvent(id=made.id, etag=changed.etag), ["color", "location"])
    assert (cleared.color, cleared.location) == ("", "")


def test_a_stale_etag_is_aborted_and_nothing_is_overwritten(person: Person) -> None:
    client = person.client
    made = create(client, timed("Offsite", START, END))
    first = update(client, agenda_pb2.AgendaEvent(id=made.id, etag=made.etag, title="Offsite (Lyon)"), ["title"])
    stale = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, etag=made.etag, title="Offsite (Nice)"),
        update_mask=FieldMask(paths=["title"]),
    )
    error = expect_error(grpc.StatusCode.ABORTED, stub(client).UpdateEvent, stale, metadata=client.md)
    assert reason(error) == "ETAG_MISMATCH" and first.etag in error.details()
    assert get(client, made.id).title == "Offsite (Lyon)"
    delete = agenda_pb2.DeleteEventRequest(event_id=made.id, etag=made.etag)
    expect_error(grpc.StatusCode.ABORTED, stub(client).DeleteEvent, delete, metadata=client.md)
    assert get(client, made.id).etag == first.etag


def test_two_people_writing_the_same_version_at_once_one_wins_and_the_other_is_told(person: Person) -> None:
    client = person.client
    made = create(client, timed("Race", START, END))

    def rename(title: str) -> grpc.StatusCode:
        request = agenda_pb2.UpdateEventRequest(
            event=agenda_pb2.AgendaEvent(id=made.id, etag=made.etag, title=title),
            update_mask=FieldMask(paths=["title"]),
        )
        try:
            stub(client).UpdateEvent(request, metadata=client.md, timeout=10)
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(rename, [f"title {i}" for i in range(4)]))
    assert codes.count(grpc.StatusCode.OK) == 1 and codes.count(grpc.StatusCode.ABORTED) == 3, codes
    winner = f"title {codes.index(grpc.StatusCode.OK)}"
    assert get(client, made.id).title == winner


def test_an_update_needs_an_etag_and_a_mask_of_known_fields(person: Person) -> None:
    client = person.client
    made = create(client, timed("Masks", START, END))
    no_etag = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, title="x"), update_mask=FieldMask(paths=["title"])
    )
    assert "event.etag" in invalid(stub(client).UpdateEvent, no_etag, client)
    for paths in ([], ["owner_id"], ["title", "etag"], ["nonsense"]):
        request = agenda_pb2.UpdateEventRequest(
            event=agenda_pb2.AgendaEvent(id=made.id, title="x", etag=made.etag), update_mask=FieldMask(paths=paths)
        )
        assert "update_mask" in invalid(stub(client).UpdateEvent, request, client), paths
    too_long = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, title="x" * 201, etag=made.etag),
        update_mask=FieldMask(paths=["title"]),
    )
    assert "event.title" in invalid(stub(client).UpdateEvent, too_long, client)
    backwards = agenda_pb2.UpdateEventRequest(
        event=agenda_pb2.AgendaEvent(id=made.id, end_time=ts(START - timedelta(hours=1)), etag=made.etag),
        update_mask=FieldMask(paths=["end_time"]),
    )
    assert "event.end_time" in invalid(stub(client).UpdateEvent, backwards, client)
    assert get(client, made.id).etag == made.etag


def test_deleting_an_event_removes_every_occurrence(person: Person) -> None:
    client = person.client
    made = create(client, timed("Daily", START, END, recurrence=daily()))
    assert len(starts_of(client, made.id, utc(2026, 5, 1), utc(2026, 6, 1))) == 28
    stub(client).DeleteEvent(agenda_pb2.DeleteEventRequest(event_id=made.id, etag=made.etag), metadata=client.md)
    assert starts_of(client, made.id, utc(2026, 5, 1), utc(2026, 6, 1)) == []
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        stub(client).GetEvent,
        agenda_pb2.GetEventRequest(event_id=made.id),
        metadata=client.md,
    )
    other = create(client, timed("No etag", START, END))
    stub(client).DeleteEvent(agenda_pb2.DeleteEventRequest(event_id=other.id), metadata=client.md)


# --- recurrence -----------------------------------------------------------------------------------------------


def test_a_weekly_event_stays_at_nine_in_paris_across_both_daylight_saving_changes(person: Person) -> None:
    client = person.client
    # Mondays at 09:00 in Paris; summer time starts on Sunday 29 March 2026 and ends on Sunday 25 October.
    spring = create(
        client,
        timed(
            "Stand-up",
            datetime(2026, 3, 16, 9, tzinfo=PARIS),
            datetime(2026, 3, 16, 9, 15, tzinfo=PARIS),
            recurrence=weekly(count=4),
        ),
    )
    assert spring.rrule == "FREQ=WEEKLY;BYDAY=MO;COUNT=4"
    assert list(spring.recurrence.weekdays) == [agenda_pb2.WEEKDAY_MONDAY]
    starts = starts_of(client, spring.id, utc(2026, 3, 1), utc(2026, 5, 1), zone="Europe/Paris")
    assert starts == [utc(2026, 3, 16, 8), utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), utc(2026, 4, 6, 7)]
    assert {s.astimezone(PARIS).hour for s in starts} == {9}
    autumn = create(
        client,
        timed(
            "Stand-up",
            datetime(2026, 10, 19, 9, tzinfo=PARIS),
            datetime(2026, 10, 19, 9, 15, tzinfo=PARIS),
            recurrence=weekly(until_date=day(date(2026, 11, 2))),
        ),
    )
    starts = starts_of(client, autumn.id, utc(2026, 10, 1), utc(2026, 12, 1))
    assert starts == [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)]


def test_a_wall_time_that_does_not_exist_on_the_spring_forward_day_is_read_with_the_offset_before_the_gap(
    person: Person,
) -> None:
    client = person.client
    # 02:30 does not exist in Paris on 29 March 2026 (02:00 jumps to 03:00): RFC 5545 reads it as 02:30 +01:00,
    # that is 01:30 UTC (03:30 summer time); the days around it are 02:30 local as usual.
    made = create(
        client,
        timed(
            "Backup",
            datetime(2026, 3, 28, 2, 30, tzinfo=PARIS),
            datetime(2026, 3, 28, 2, 45, tzinfo=PARIS),
            recurrence=daily(count=3),
        ),
    )
    assert starts_of(client, made.id, utc(2026, 3, 27), utc(2026, 4, 1)) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]


def test_an_occurrence_that_began_before_the_range_is_returned_one_that_ended_at_its_start_is_not(
    person: Person,
) -> None:
    client = person.client
    made = create(client, timed("Shift", utc(2026, 5, 1, 9), utc(2026, 5, 1, 10), zone="UTC", recurrence=daily()))
    # 09:30-12:00 on 3 May: the 09:00-10:00 occurrence is under way, so it is there.
    assert starts_of(client, made.id, utc(2026, 5, 3, 9, 30), utc(2026, 5, 3, 12)) == [utc(2026, 5, 3, 9)]
    # From 10:00 the same day: it ended exactly when the range starts, so it is not; the next day's is.
    assert starts_of(client, made.id, utc(2026, 5, 3, 10), utc(2026, 5, 4, 12)) == [utc(2026, 5, 4, 9)]
    # A range that ends exactly when an occurrence starts does not hold it either.
    assert starts_of(client, made.id, utc(2026, 5, 3, 10), utc(2026, 5, 4, 9)) == []
    # A long event that began months before the range.
    season = create(client, timed("Season", utc(2026, 1, 1), utc(2026, 12, 31), zone="UTC"))
    assert starts_of(client, season.id, utc(2026, 6, 1), utc(2026, 6, 2)) == [utc(2026, 1, 1)]
    # A series that began years ago is still expanded in the range.
    old = create(client, timed("Old", utc(1990, 1, 1, 7), utc(1990, 1, 1, 8), zone="UTC", recurrence=daily(interval=3)))
    found = starts_of(client, old.id, utc(2026, 6, 1), utc(2026, 6, 10))
    assert found and all((s - utc(1990, 1, 1, 7)).days % 3 == 0 for s in found) and len(found) == 3


def test_count_and_until_end_a_series(person: Person) -> None:
    client = person.client
    month = (utc(2026, 5, 1), utc(2026, 6, 1))
    counted = create(
        client, timed("Counted", utc(2026, 5, 4, 8), utc(2026, 5, 4, 9), zone="UTC", recurrence=daily(count=5))
    )
    assert starts_of(client, counted.id, *month) == [utc(2026, 5, d, 8) for d in range(4, 9)]
    assert counted.rrule == "FREQ=DAILY;COUNT=5"
    until = create(
        client,
        timed(
            "Until",
            utc(2026, 5, 4, 8),
            utc(2026, 5, 4, 9),
            zone="UTC",
            recurrence=daily(interval=2, until_date=day(date(2026, 5, 10))),
        ),
    )
    assert starts_of(client, until.id, *month) == [utc(2026, 5, d, 8) for d in (4, 6, 8, 10)]
    assert until.rrule == "FREQ=DAILY;INTERVAL=2;UNTIL=20260510T235959Z"
    # Monthly on the 31st skips the months without one; yearly on 29 February, the years without one.
    monthly = create(
        client,
        timed(
            "Month end",
            utc(2026, 1, 31, 12),
            utc(2026, 1, 31, 13),
            zone="UTC",
            recurrence=agenda_pb2.Recurrence(frequency=agenda_pb2.RECURRENCE_FREQUENCY_MONTHLY, count=4),
        ),
    )
    starts = starts_of(client, monthly.id, utc(2026, 1, 1), utc(2026, 12, 31))
    assert [s.month for s in starts] == [1, 3, 5, 7]
    leap = create(
        client,
        all_day(
            "Leap day",
            date(2028, 2, 29),
            date(2028, 3, 1),
            recurrence=agenda_pb2.Recurrence(frequency=agenda_pb2.RECURRENCE_FREQUENCY_YEARLY),
        ),
    )
    found = [o for o in occurrences(client, utc(2028, 1, 1), utc(2028, 12, 31)) if o.event_id == leap.id]
    assert [as_date(o.start_date) for o in found] == [date(2028, 2, 29)]
    assert [o for o in occurrences(client, utc(2029, 1, 1), utc(2029, 12, 31)) if o.event_id == leap.id] == []


def test_exception_dates_remove_occurrences(person: Person) -> None:
    client = person.client
    made = create(
        client,
        timed(
            "Gym",
            datetime(2026, 5, 4, 18, tzinfo=PARIS),
            datetime(2026, 5, 4, 19, tzinfo=PARIS),
            recurrence=weekly(
                weekdays=[agenda_pb2.WEEKDAY_MONDAY, agenda_pb2.WEEKDAY_THURSDAY],
                exception_dates=[day(date(2026, 5, 7)), day(date(2026, 5, 14))],
            ),
        ),
    )
    assert made.rrule == "FREQ=WEEKLY;BYDAY=MO,TH"
    starts = [s.astimezone(PARIS).date() for s in starts_of(client, made.id, utc(2026, 5, 1), utc(2026, 5, 22))]
    assert starts == [date(2026, 5, 4), date(2026, 5, 11), date(2026, 5, 18), date(2026, 5, 21)]
    found = occurrences(client, utc(2026, 5, 1), utc(2026, 5, 22))
    assert all(o.recurring for o in found if o.event_id == made.id)


def test_a_pathological_range_is_refused_not_expanded_without_bound(person: Person) -> None:
    client = person.client
    for i in range(14):  # 14 daily events: more than 5,000 occurrences in a year
        create(
            client, timed(f"Every day {i}", utc(2030, 1, 1, i), utc(2030, 1, 1, i, 30), zone="UTC", recurrence=daily())
        )
    request = agenda_pb2.ListEventsRequest(start_time=ts(utc(2030, 1, 1)), end_time=ts(utc(2030, 12, 31)))
    error = expect_error(grpc.StatusCode.FAILED_PRECONDITION, stub(client).ListEvents, request, metadata=client.md)
    assert reason(error) == "TOO_MANY_OCCURRENCES"
    assert len([o for o in occurrences(client, utc(2030, 1, 1), utc(2030, 2, 1)) if o.kind == EVENT]) == 14 * 31


# --- listing: range, zone, paging -----------------------------------------------------------------------------


def test_list_events_checks_its_range_zone_and_paging(person: Person) -> None:
    client = person.client

    def refused(**fields) -> dict[str, str]:
        return invalid(stub(client).ListEvents, agenda_pb2.ListEventsRequest(**fields), client)

    assert set(refused()) >= {"start_time", "end_time"}
    assert "end_time" in refused(start_time=ts(utc(2026, 5, 2)), end_time=ts(utc(2026, 5, 1)))
    assert "end_time" in refused(start_time=ts(utc(2026, 5, 1)), end_time=ts(utc(2026, 5, 1)))
    assert "end_time" in refused(start_time=ts(utc(2026, 1, 1)), end_time=ts(utc(2027, 1, 3)))
    week = {"start_time": ts(utc(2026, 5, 1)), "end_time": ts(utc(2026, 5, 8))}
    assert "time_zone" in refused(**week, time_zone="Nowhere/Special")
    assert "page_size" in refused(**week, page_size=-1)
    assert "page_size" in refused(**week, page_size=1001)
    assert "page_token" in refused(**week, page_token="not-a-token")
    # 366 days is fine.
    occurrences(client, utc(2026, 1, 1), utc(2027, 1, 2))


def test_occurrences_come_by_start_page_by_page(person: Person) -> None:
    client = person.client
    made = [
        create(client, timed(f"E{i}", utc(2032, 3, 1 + i, 9), utc(2032, 3, 1 + i, 10), zone="UTC")) for i in range(5)
    ]
    off = create(client, all_day("Off", date(2032, 3, 3), date(2032, 3, 4)))
    request = agenda_pb2.ListEventsRequest(start_time=ts(utc(2032, 3, 1)), end_time=ts(utc(2032, 3, 8)), page_size=2)
    first = stub(client).ListEvents(request, metadata=client.md)
    assert len(first.occurrences) == 2 and first.next_page_token
    other_filters = agenda_pb2.ListEventsRequest(
        start_time=ts(utc(2032, 3, 2)), end_time=ts(utc(2032, 3, 8)), page_token=first.next_page_token
    )
    assert "page_token" in invalid(stub(client).ListEvents, other_filters, client)
    found = [o for o in occurrences(client, utc(2032, 3, 1), utc(2032, 3, 8), page_size=2) if o.kind == EVENT]
    assert [o.event_id for o in found] == [made[0].id, made[1].id, off.id, made[2].id, made[3].id, made[4].id]


# --- holidays -------------------------------------------------------------------------------------------------


def test_french_public_holidays_come_back_read_only(person: Person) -> None:
    found = occurrences(person.client, utc(2026, 4, 1), utc(2026, 8, 1), zone="Europe/Paris")
    holidays = {as_date(o.start_date): o for o in found if o.kind == HOLIDAY}
    assert date(2026, 7, 14) in holidays and date(2026, 4, 6) in holidays  # National Day, Easter Monday
    assert date(2026, 5, 1) in holidays and date(2026, 5, 25) in holidays
    for entry in holidays.values():
        assert entry.read_only and entry.all_day and entry.event_id == 0 and entry.title and not entry.etag
        assert as_date(entry.end_date) == as_date(entry.start_date) + timedelta(days=1)
    bastille = holidays[date(2026, 7, 14)]
    assert as_utc(bastille.start_time) == datetime(2026, 7, 14, tzinfo=PARIS)


def _holidays_on(server: ServerProcess, start: datetime, end: datetime) -> set[date]:
    client = Client(server.address)
    try:
        client.login("admin", ADMIN_PASSWORD)
        return {as_date(o.start_date) for o in occurrences(client, start, end) if o.kind == HOLIDAY}
    finally:
        client.close()


def test_the_holidays_country_is_a_setting_and_empty_turns_them_off(start_server) -> None:
    german = start_server(WORKSPACE_HOLIDAYS_COUNTRY="DE", WORKSPACE_HOLIDAYS_SUBDIVISION="BY")
    found = _holidays_on(german, utc(2026, 1, 1), utc(2026, 12, 31))
    assert date(2026, 10, 3) in found and date(2026, 1, 6) in found  # Unity Day; Epiphany in Bavaria
    assert date(2026, 7, 14) not in found
    none = start_server(WORKSPACE_HOLIDAYS_COUNTRY="")
    assert _holidays_on(none, utc(2026, 1, 1), utc(2026, 12, 31)) == set()


# --- export ----------------------------------------------------------------------------------------------------


def _export(client: Client) -> httpbody_pb2.HttpBody:
    return stub(client).ExportCalendar(agenda_pb2.ExportCalendarRequest(), metadata=client.md, timeout=30)


def test_the_calendar_file_round_trips_every_event(person: Person, other: Person) -> None:
    client = person.client
    standup = create(
        client,
        timed(
            "Stand-up, daily",
            datetime(2026, 3, 16, 9, tzinfo=PARIS),
            datetime(2026, 3, 16, 9, 15, tzinfo=PARIS),
            description="Line one\nLine two; with a semicolon",
            location="Room 2",
            recurrence=weekly(
                weekdays=[agenda_pb2.WEEKDAY_MONDAY, agenda_pb2.WEEKDAY_WEDNESDAY],
                until_date=day(date(2026, 12, 31)),
                exception_dates=[day(date(2026, 3, 18))],
            ),
        ),
    )
    trip = create(
        client,
        all_day(
            "Trip",
            date(2026, 8, 3),
            date(2026, 8, 8),
            recurrence=agenda_pb2.Recurrence(
                frequency=agenda_pb2.RECURRENCE_FREQUENCY_YEARLY, count=3, exception_dates=[day(date(2027, 8, 3))]
            ),
        ),
    )
    shared = create(other.client, timed("Theirs, shared", START, END, zone="UTC", shared_with=[person.user.id]))
    private = create(other.client, timed("Theirs, private", START, END, zone="UTC"))

    body = _export(client)
    assert body.content_type == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(body.data)
    events = {str(e["uid"]): e for e in calendar.walk("VEVENT")}
    assert f"agenda-event-{private.id}@workspace" not in events
    assert {str(e["summary"]) for e in events.values()} == {"Stand-up, daily", "Trip", "Theirs, shared"}
    assert {str(t["tzid"]) for t in calendar.walk("VTIMEZONE")} == {"Europe/Paris"}

    s = events[f"agenda-event-{standup.id}@workspace"]
    assert str(s["description"]) == "Line one\nLine two; with a semicolon" and str(s["location"]) == "Room 2"
    assert s["dtstart"].params["TZID"] == "Europe/Paris"
    assert s.decoded("dtstart") == datetime(2026, 3, 16, 9, tzinfo=PARIS)
    assert s.decoded("dtend") == datetime(2026, 3, 16, 9, 15, tzinfo=PARIS)
    assert s["rrule"].to_ical().decode() == "FREQ=WEEKLY;UNTIL=20261231T225959Z;BYDAY=MO,WE"
    assert [d.dt for d in s["exdate"].dts] == [datetime(2026, 3, 18, 9, tzinfo=PARIS)]

    t = events[f"agenda-event-{trip.id}@workspace"]
    assert t["dtstart"].params.get("VALUE") == "DATE" and t.decoded("dtstart") == date(2026, 8, 3)
    assert t.decoded("dtend") == date(2026, 8, 8)
    assert t["rrule"].to_ical().decode() == "FREQ=YEARLY;COUNT=3"
    assert [d.dt for d in t["exdate"].dts] == [date(2027, 8, 3)]
    assert events[f"agenda-event-{shared.id}@workspace"].decoded("dtstart") == START

    # The same UIDs again: a calendar program that imports the file twice updates, never duplicates.
    again = icalendar.Calendar.from_ical(_export(client).data)
    assert {str(e["uid"]) for e in again.walk("VEVENT")} == set(events)


def test_an_empty_agenda_is_still_a_valid_calendar(person: Person) -> None:
    calendar = icalendar.Calendar.from_ical(_export(person.client).data)
    assert calendar["version"] == "2.0" and calendar.walk("VEVENT") == []


# --- authentication ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer not-a-token"),)])
def test_the_agenda_needs_a_valid_token(person: Person, metadata) -> None:
    agenda = stub(person.client)
    for call, request in (
        (agenda.ListEvents, agenda_pb2.ListEventsRequest(start_time=ts(START), end_time=ts(END))),
        (agenda.GetEvent, agenda_pb2.GetEventRequest(event_id=1)),
        (agenda.CreateEvent, agenda_pb2.CreateEventRequest(event=timed("t", START, END))),
        (agenda.UpdateEvent, agenda_pb2.UpdateEventRequest(event=agenda_pb2.AgendaEvent(id=1, etag="1-1"))),
        (agenda.DeleteEvent, agenda_pb2.DeleteEventRequest(event_id=1)),
        (agenda.ExportCalendar, agenda_pb2.ExportCalendarRequest()),
    ):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, call, request, metadata=metadata)


# --- activity ---------------------------------------------------------------------------------------------------


def test_changes_are_recorded_with_the_title_and_field_names_never_the_description(
    admin: Client, person: Person
) -> None:
    client = person.client
    made = create(client, timed("Interview", START, END, description="candidate: Jane Secret"))
    changed = update(
        client,
        agenda_pb2.AgendaEvent(id=made.id, etag=made.etag, location="HQ", title="Interview 2"),
        ["location", "title"],
    )
    stub(client).DeleteEvent(agenda_pb2.DeleteEventRequest(event_id=made.id, etag=changed.etag), metadata=client.md)
    reply = activity_pb2_grpc.ActivityServiceStub(admin.channel).ListActivity(
        activity_pb2.ListActivityRequest(actor_id=person.user.id, resource_type="agenda_event", page_size=10),
        metadata=admin.md,
    )
    found = list(reversed(reply.entries))
    assert [(e.action, e.resource_type, e.resource_id) for e in found] == [
        ("agenda_event.create", "agenda_event", str(made.id)),
        ("agenda_event.update", "agenda_event", str(made.id)),
        ("agenda_event.delete", "agenda_event", str(made.id)),
    ]
    assert [e.detail for e in found] == ["Interview", "location, title", "Interview 2"]
    assert all("Secret" not in str(e) for e in found)


# --- over REST ----------------------------------------------------------------------------------------------------


def test_the_agenda_over_rest(gateway: GatewayProcess, person: Person) -> None:
    bearer = {"authorization": f"Bearer {person.client.access_token}"}
    body = {
        "title": "Over REST",
        "start_date": {"year": 2033, "month": 7, "day": 14},
        "end_date": {"year": 2033, "month": 7, "day": 15},
        "color": "#00aa00",
    }
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events", "POST", body, bearer)
    assert status == 200, text
    made = json.loads(text)["event"]
    assert made["all_day"] is True and made["color"] == "#00AA00" and made["etag"]

    timed_body = {
        "title": "Timed",
        "start_time": "2033-07-12T07:00:00Z",
        "end_time": "2033-07-12T08:00:00Z",
        "time_zone": "Europe/Paris",
        "recurrence": {"frequency": "RECURRENCE_FREQUENCY_DAILY", "count": 3},
    }
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events", "POST", timed_body, bearer)
    assert status == 200, text
    daily_event = json.loads(text)["event"]

    query = urllib.parse.urlencode(
        {"start_time": "2033-07-10T00:00:00Z", "end_time": "2033-07-17T00:00:00Z", "time_zone": "Europe/Paris"}
    )
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events?{query}", headers=bearer)
    assert status == 200, text
    listed = json.loads(text)["occurrences"]
    mine = [o for o in listed if o["kind"] == "OCCURRENCE_KIND_EVENT"]
    assert [o["start_time"] for o in mine if o["event_id"] == daily_event["id"]] == [
        "2033-07-12T07:00:00Z",
        "2033-07-13T07:00:00Z",
        "2033-07-14T07:00:00Z",
    ]
    (whole,) = [o for o in mine if o["event_id"] == made["id"]]
    assert whole["start_date"] == {"year": 2033, "month": 7, "day": 14}
    assert any(o["kind"] == "OCCURRENCE_KIND_HOLIDAY" and o["start_date"]["day"] == 14 for o in listed)

    patch = f"{gateway.url}/v1/agenda/events/{made['id']}?update_mask=title"
    status, text, _ = fetch(patch, "PATCH", {"title": "Renamed", "etag": "stale"}, bearer)
    assert status == 409, text
    status, text, _ = fetch(patch, "PATCH", {"title": "Renamed", "etag": made["etag"]}, bearer)
    assert status == 200 and json.loads(text)["event"]["title"] == "Renamed", text
    renamed = json.loads(text)["event"]
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events/{made['id']}", headers=bearer)
    assert status == 200 and json.loads(text)["event"]["etag"] == renamed["etag"], text

    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events", "POST", {"title": "bad", "color": "red"}, bearer)
    assert status == 400 and "event.color" in text, text
    too_long = urllib.parse.urlencode({"start_time": "2033-01-01T00:00:00Z", "end_time": "2035-01-01T00:00:00Z"})
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events?{too_long}", headers=bearer)
    assert status == 400 and "end_time" in text, text

    gone = f"{gateway.url}/v1/agenda/events/{made['id']}?etag={urllib.parse.quote(made['etag'])}"
    status, text, _ = fetch(gone, "DELETE", headers=bearer)
    assert status == 409 and "ETAG_MISMATCH" in text, text  # the etag from before the rename
    gone = f"{gateway.url}/v1/agenda/events/{made['id']}?etag={urllib.parse.quote(renamed['etag'])}"
    status, text, _ = fetch(gone, "DELETE", headers=bearer)
    assert status == 200, text
    status, text, _ = fetch(f"{gateway.url}/v1/agenda/events/{made['id']}", headers=bearer)
    assert status == 404, text


def test_the_calendar_downloads_through_the_gateway(gateway: GatewayProcess, person: Person) -> None:
    made = create(person.client, timed("Downloadable", START, END, location="Lyon"))
    bearer = {"authorization": f"Bearer {person.client.access_token}"}
    status, text, headers = fetch(f"{gateway.url}/v1/agenda/calendar.ics", headers=bearer)
    assert status == 200, text
    assert headers["content-type"] == "text/calendar; charset=utf-8"
    assert headers["content-disposition"] == 'attachment; filename="agenda.ics"'
    calendar = icalendar.Calendar.from_ical(text)
    (event,) = calendar.walk("VEVENT")
    assert str(event["uid"]) == f"agenda-event-{made.id}@workspace" and str(event["location"]) == "Lyon"
    status, _, _ = fetch(f"{gateway.url}/v1/agenda/calendar.ics")
    assert status == 401


# --- the expansion itself, against dateutil walking every series from its start --------------------------------


@pytest.mark.parametrize("frequency", ["DAILY", "WEEKLY"])
def test_skipping_ahead_in_an_old_series_finds_exactly_what_walking_it_from_the_start_finds(frequency: str) -> None:
    """An old daily or weekly series is not walked from its start (see ``recurrence._skip_ahead``): whatever the
    interval, weekdays and window, the occurrences found are the same as dateutil's from the real start."""
    rng = random.Random(20261126)
    for _ in range(300):
        first = datetime(1950, 1, 1, 9, 30) + timedelta(days=rng.randrange(20_000))
        interval = rng.randint(1, 9)
        weekdays: tuple[int, ...] = ()
        if frequency == "WEEKLY" and rng.random() < 0.7:
            weekdays = tuple(sorted({first.weekday(), *rng.sample(range(7), rng.randint(0, 3))}))
        recurrence = Recurrence(Frequency(frequency), interval=interval, weekdays=weekdays)
        schedule = Schedule(
            all_day=False,
            start=first.replace(tzinfo=PARIS).astimezone(UTC),
            end=first.replace(tzinfo=PARIS).astimezone(UTC) + timedelta(hours=1),
            time_zone="Europe/Paris",
            recurrence=recurrence,
        )
        lowest = first + timedelta(days=rng.randrange(30_000))
        highest = lowest + timedelta(days=rng.randint(1, 120))
        walked = rrule.rrule(
            getattr(rrule, frequency),
            dtstart=first,
            interval=interval,
            byweekday=weekdays or (first.weekday(),) if frequency == "WEEKLY" else None,
            wkst=rrule.MO,
        ).between(lowest, highest, inc=True)
        assert list(local_starts(schedule, lowest, highest)) == walked, (first, interval, weekdays, lowest)
