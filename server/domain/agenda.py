"""The shared agenda: events (timed or all-day, repeating or not) that their owner shares with some people or
with everyone, the public holidays of the server's country, and the caller's agenda as an iCalendar file.

Who sees what: the owner, the people the event is shared with, and everyone when it is shared with
everyone; to anybody else an event does not exist (``NotFound``, as for an unknown id). Only the owner
changes or deletes it (``PermissionDenied`` for the others who see it); administrators have no extra rights
over other people's events.

Concurrency: every event has a revision, 1 when created and one more with every update; its etag names it.
An update must carry the etag it read (a stale one is ``Aborted``), and the UPDATE itself only applies to
that revision, so of two people who read the same version and both write, the second is told, never
silently overwritten.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .activity import record_activity
from .errors import Aborted, FailedPrecondition, NotFound, PermissionDenied, Validator
from .holidays import PublicHolidays
from .model import Principal
from .ports import Clock, UnitOfWork, UnitOfWorkFactory
from .recurrence import Frequency, Placed, Recurrence, Schedule, all_starts, midnight, occurrences

TITLE_MAX = 200
DESCRIPTION_MAX = 5000
LOCATION_MAX = 200
TIME_ZONE_MAX = 64
SHARED_WITH_MAX = 200
INTERVAL_MAX = 1000
COUNT_MAX = 1000
EXCEPTIONS_MAX = 500
#: Events happen between these dates (so that no series is walked from the year 1).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
#: One ListEvents answer (before paging) expands at most this many occurrences of at most this many events;
#: beyond, the caller is asked for a shorter range (``FailedPrecondition``, reason ``TOO_MANY_OCCURRENCES``).
MAX_OCCURRENCES = 5000
MAX_EVENTS_IN_RANGE = 5000
#: ExportCalendar writes at most this many events (``FailedPrecondition`` beyond).
MAX_EXPORTED_EVENTS = 10_000
#: Slack around an all-day event's span in UTC: its days begin up to 14 hours earlier (UTC+14) and end up to
#: 12 hours later (UTC-12) than in UTC, depending on the viewer's zone.
ALL_DAY_SLACK = timedelta(days=1)
COLOR = re.compile(r"#[0-9A-Fa-f]{6}")

#: What ``UpdateEvent`` may change (its ``update_mask`` paths).
UPDATABLE_FIELDS = frozenset(
    {
        "title",
        "description",
        "location",
        "color",
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        "time_zone",
        "recurrence",
        "shared_with",
        "shared_with_everyone",
    }
)
#: Mask paths to the ``EventFields`` attribute each sets.
FIELD_OF_PATH = {"start_time": "start", "end_time": "end"}


@dataclass(frozen=True)
class EventFields:
    """What the owner says of an event. Timed: ``start``/``end`` (aware) and ``time_zone``; all-day:
    ``start_date``/``end_date`` (end exclusive)."""

    title: str = ""
    description: str = ""
    location: str = ""
    #: ``#RRGGBB`` upper-case, or empty
    color: str = ""
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    time_zone: str = ""
    recurrence: Recurrence | None = None
    #: user ids, sorted, without the owner
    shared_with: tuple[int, ...] = ()
    shared_with_everyone: bool = False

    @property
    def all_day(self) -> bool:
        return self.start_date is not None

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            all_day=self.all_day,
            start=self.start,
            end=self.end,
            start_date=self.start_date,
            end_date=self.end_date,
            time_zone=self.time_zone,
            recurrence=self.recurrence,
        )


@dataclass(frozen=True)
class AgendaEvent:
    id: int
    owner_id: int
    fields: EventFields
    #: 1 when created, one more with every update
    revision: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f"{self.id}-{self.revision}"

    def visible_to(self, user_id: int) -> bool:
        return self.owner_id == user_id or self.fields.shared_with_everyone or user_id in self.fields.shared_with


@dataclass(frozen=True)
class Span:
    """The instants between which every occurrence of an event lies (``last`` None: it repeats forever), in
    UTC; for an all-day event, wide enough for any viewer's zone. Storage filters a range query by it."""

    first: datetime
    last: datetime | None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Where an entry stands in a ListEvents answer (``Occurrence.key``); page tokens continue after one.
ListKey = tuple[int, int, int, str]


@dataclass(frozen=True)
class Occurrence:
    """An entry of ``ListEvents``: an event's occurrence (``event`` set) or a public holiday (``holiday``)."""

    placed: Placed
    event: AgendaEvent | None = None
    holiday: str = ""

    @property
    def key(self) -> ListKey:
        """Its place in the list: by start, all-day entries first, then event id (holidays 0), then title."""
        since = self.placed.start - EPOCH
        micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
        all_day = self.holiday != "" or (self.event is not None and self.event.fields.all_day)
        return (micros, 0 if all_day else 1, self.event.id if self.event else 0, self.holiday)


@dataclass(frozen=True)
class OccurrencePage:
    occurrences: list[Occurrence]
    #: key of the last one, to continue after; None on the last page
    next_after: ListKey | None = None


@dataclass(frozen=True)
class RangeQuery:
    """One ListEvents call: the range [start, end), the viewer's zone, and the page wanted."""

    start: datetime
    end: datetime
    viewer: ZoneInfo
    after: ListKey | None = None
    limit: int = 250


# --- field rules -----------------------------------------------------------------------------------------


def _has_control(text: str, *, allow_newlines: bool = False) -> bool:
    allowed = "\n\r\t" if allow_newlines else ""
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def clean_text(
    v: Validator, name: str, value: str, limit: int, *, required: bool = False, multiline: bool = False
) -> str:
    clean = value.strip()
    if required and not clean:
        v.add(f"event.{name}", "is required")
    elif len(clean) > limit:
        v.add(f"event.{name}", f"must be at most {limit} characters")
    elif _has_control(clean, allow_newlines=multiline):
        v.add(f"event.{name}", "must not contain control characters")
    return clean


def clean_color(v: Validator, color: str) -> str:
    clean = color.strip()
    if clean and not COLOR.fullmatch(clean):
        v.add("event.color", "must be #RRGGBB (six hexadecimal digits), e.g. #3A87AD, or empty")
    return clean.upper()


def zone_named(v: Validator, field_name: str, name: str) -> ZoneInfo | None:
    """The IANA zone called ``name`` (``Europe/Paris``); None (and a violation) if there is none."""
    if len(name) > TIME_ZONE_MAX or not name or name.startswith(("/", ".")) or ".." in name or "\\" in name:
        v.add(field_name, "must be an IANA time zone name such as Europe/Paris")
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        v.add(field_name, f"{name!r} is not a known IANA time zone (e.g. Europe/Paris, America/New_York, UTC)")
        return None


def _check_when(v: Validator, fields: EventFields) -> None:
    timed = fields.start is not None or fields.end is not None
    dated = fields.start_date is not None or fields.end_date is not None
    if timed and dated:
        v.add("event.start_date", "an event has either times (start_time, end_time) or dates, not both")
        return
    if not timed and not dated:
        v.add("event.start_time", "is required (or start_date and end_date for an all-day event)")
        return
    if timed:
        if fields.start is None:
            v.add("event.start_time", "is required with end_time")
        if fields.end is None:
            v.add("event.end_time", "is required with start_time")
        if fields.start is not None and fields.end is not None:
            if fields.end <= fields.start:
                v.add("event.end_time", "must be after start_time")
            if fields.start < EARLIEST or fields.end > LATEST:
                v.add("event.start_time", f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
        if not fields.time_zone:
            v.add("event.time_zone", "is required for a timed event (an IANA name such as Europe/Paris)")
        else:
            zone_named(v, "event.time_zone", fields.time_zone)
        return
    if fields.start_date is None:
        v.add("event.start_date", "is required with end_date")
    if fields.end_date is None:
        v.add("event.end_date", "is required with start_date (the day after the last day: it is exclusive)")
    if fields.start_date is not None and fields.end_date is not None:
        if fields.end_date <= fields.start_date:
            v.add("event.end_date", "must be after start_date (it is exclusive: a one-day event ends the next day)")
        if fields.start_date < EARLIEST.date() or fields.end_date > LATEST.date():
            v.add("event.start_date", f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    if fields.time_zone:
        zone_named(v, "event.time_zone", fields.time_zone)


def _check_recurrence(v: Validator, fields: EventFields) -> None:
    recurrence = fields.recurrence
    if recurrence is None:
        return
    where = "event.recurrence"
    if not 1 <= recurrence.interval <= INTERVAL_MAX:
        v.add(f"{where}.interval", f"must be between 1 and {INTERVAL_MAX} (0 means 1)")
    if recurrence.count is not None and not 1 <= recurrence.count <= COUNT_MAX:
        v.add(f"{where}.count", f"must be between 1 and {COUNT_MAX} (0: no limit)")
    if recurrence.count is not None and recurrence.until is not None:
        v.add(f"{where}.count", "cannot be given with until_date (RFC 5545): choose one")
    if recurrence.weekdays and recurrence.frequency is not Frequency.WEEKLY:
        v.add(f"{where}.weekdays", "are only for weekly recurrences")
    if len(recurrence.exceptions) > EXCEPTIONS_MAX:
        v.add(f"{where}.exception_dates", f"must be at most {EXCEPTIONS_MAX}")
    if v.violations:
        return  # the checks below need a valid start
    first = fields.schedule.local_start()
    if recurrence.frequency is Frequency.WEEKLY and recurrence.weekdays:
        if first.weekday() not in recurrence.weekdays:
            v.add(
                f"{where}.weekdays",
                f"must include the start's own weekday ({first:%A} in the event's time zone): "
                "the first occurrence is the event itself",
            )
    if recurrence.until is not None:
        if recurrence.until < first.date():
            v.add(f"{where}.until_date", "must not be before the event's start date")
        elif recurrence.until >= LATEST.date():
            v.add(f"{where}.until_date", f"must be before {LATEST:%Y-%m-%d}")


def clean_fields(v: Validator, fields: EventFields, *, owner_id: int) -> EventFields:
    """The event as stored: texts trimmed, colour upper-case, shares sorted without repeats; every violation
    (field paths ``event.…``) goes to ``v``."""
    clean = replace(
        fields,
        title=clean_text(v, "title", fields.title, TITLE_MAX, required=True),
        description=clean_text(v, "description", fields.description, DESCRIPTION_MAX, multiline=True),
        location=clean_text(v, "location", fields.location, LOCATION_MAX),
        color=clean_color(v, fields.color),
        time_zone=fields.time_zone.strip(),
        shared_with=tuple(sorted(set(fields.shared_with))),
    )
    if clean.recurrence is not None:
        clean = replace(
            clean,
            recurrence=replace(
                clean.recurrence,
                weekdays=tuple(sorted(set(clean.recurrence.weekdays))),
                exceptions=tuple(sorted(set(clean.recurrence.exceptions))),
            ),
        )
    before = len(v.violations)
    _check_when(v, clean)
    if len(v.violations) == before:
        _check_recurrence(v, clean)
    if len(clean.shared_with) > SHARED_WITH_MAX:
        v.add("event.shared_with", f"must name at most {SHARED_WITH_MAX} people")
    if any(user_id <= 0 for user_id in clean.shared_with):
        v.add("event.shared_with", "must be user ids (positive)")
    if owner_id in clean.shared_with:
        v.add("event.shared_with", f"names you ({owner_id}), the owner: you always see your own events")
    return clean


def span_of(fields: EventFields) -> Span:
    """Where in time the event's occurrences lie, for the range query (see ``Span``)."""
    schedule = fields.schedule
    recurrence = fields.recurrence
    if recurrence is None and fields.start is not None and fields.end is not None:
        return Span(fields.start, fields.end)
    if schedule.all_day:
        assert fields.start_date is not None
        first = midnight(fields.start_date, UTC) - ALL_DAY_SLACK
        length = timedelta(days=schedule.days)
    else:
        assert fields.start is not None
        first, length = fields.start, schedule.duration
    if recurrence is None:
        last_start = schedule.local_start()
    elif recurrence.count is not None:
        last_start = all_starts(schedule, recurrence.count)[-1]
    elif recurrence.until is not None:
        last_start = datetime.combine(recurrence.until + timedelta(days=1), datetime.min.time())
    else:
        return Span(first, None)
    if schedule.all_day:
        return Span(first, midnight(last_start.date(), UTC) + length + ALL_DAY_SLACK)
    # The wall time in the zone, with a day's slack for the offset; never before the real end.
    return Span(first, max(fields.end or first, last_start.replace(tzinfo=UTC) + timedelta(days=1) + length))


def check_range(v: Validator, start: datetime | None, end: datetime | None, max_days: int) -> None:
    if start is None:
        v.add("start_time", "is required")
    if end is None:
        v.add("end_time", "is required")
    if start is None or end is None:
        return
    if end <= start:
        v.add("end_time", "must be after start_time")
    elif end - start > timedelta(days=max_days):
        v.add("end_time", f"must be at most {max_days} days after start_time (ask for the rest in another call)")


def _not_found(event_id: int) -> NotFound:
    # The same answer for "does not exist" and "not shared with you": nobody learns what others keep.
    return NotFound(f"event {event_id} not found")


def _stale(event: AgendaEvent) -> Aborted:
    return Aborted(
        f"event {event.id} changed since you read it (its etag is now {event.etag!r}): "
        "read it again, then apply your change",
        reason="ETAG_MISMATCH",
    )


class Agenda:
    """Use cases on the agenda. Every method acts for ``actor`` and sees only what they may see."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, holidays: PublicHolidays, *, max_range_days: int) -> None:
        self._uow = uow
        self._clock = clock
        self._holidays = holidays
        self.max_range_days = max_range_days

    async def list_occurrences(self, actor: Principal, query: RangeQuery) -> OccurrencePage:
        """Every occurrence overlapping [start, end) that ``actor`` may see, and the holidays, one page of them."""
        v = Validator()
        check_range(v, query.start, query.end, self.max_range_days)
        v.raise_if_any()
        async with self._uow(read_only=True) as uow:
            events = await uow.agenda.visible_between(
                actor.user_id, query.start, query.end, limit=MAX_EVENTS_IN_RANGE + 1
            )
        if len(events) > MAX_EVENTS_IN_RANGE:
            raise _too_many(f"more than {MAX_EVENTS_IN_RANGE} events")
        found: list[Occurrence] = []
        for event in events:
            for placed in occurrences(event.fields.schedule, query.start, query.end, query.viewer):
                found.append(Occurrence(placed, event=event))
                if len(found) > MAX_OCCURRENCES:
                    raise _too_many(f"more than {MAX_OCCURRENCES} occurrences")
        found += self._holidays_between(query.start, query.end, query.viewer)
        found.sort(key=lambda o: o.key)
        if query.after is not None:
            found = [o for o in found if o.key > query.after]
        page = found[: query.limit]
        more = len(found) > query.limit
        return OccurrencePage(page, page[-1].key if more else None)

    def _holidays_between(self, start: datetime, end: datetime, viewer: ZoneInfo) -> list[Occurrence]:
        first = start.astimezone(viewer).date()
        last = end.astimezone(viewer).date()
        found = []
        for day, name in self._holidays.between(first, last):
            begins, ends = midnight(day, viewer), midnight(day + timedelta(days=1), viewer)
            if begins < end and ends > start:
                found.append(Occurrence(Placed(begins, ends, day, day + timedelta(days=1)), holiday=name))
        return found

    async def get(self, actor: Principal, event_id: int) -> AgendaEvent:
        async with self._uow(read_only=True) as uow:
            event = await uow.agenda.get(event_id)
        if event is None or not event.visible_to(actor.user_id):
            raise _not_found(event_id)
        return event

    async def create(self, actor: Principal, fields: EventFields) -> AgendaEvent:
        v = Validator()
        fields = clean_fields(v, fields, owner_id=actor.user_id)
        v.raise_if_any()
        async with self._uow() as uow:
            await _check_people(uow, fields.shared_with)
            now = self._clock()
            event = await uow.agenda.add(owner_id=actor.user_id, fields=fields, span=span_of(fields), now=now)
            await record_activity(uow, actor.user, "agenda_event.create", "agenda_event", event.id, fields.title, now)
            await uow.commit()
        return event

    async def update(self, actor: Principal, event_id: int, etag: str, changes: dict[str, object]) -> AgendaEvent:
        """Apply ``changes`` (``EventFields`` attributes; a subset of what UPDATABLE_FIELDS name) if ``etag`` is
        the event's current one."""
        v = Validator()
        v.check(bool(etag), "event.etag", "is required: send the etag of the version you changed")
        v.raise_if_any()
        async with self._uow() as uow:
            event = await uow.agenda.get(event_id)
            if event is None or not event.visible_to(actor.user_id):
                raise _not_found(event_id)
            if event.owner_id != actor.user_id:
                raise PermissionDenied(f"event {event_id} is not yours: only its owner changes it")
            if etag != event.etag:
                raise _stale(event)
            fields = clean_fields(v, replace(event.fields, **changes), owner_id=actor.user_id)  # type: ignore[arg-type]
            v.raise_if_any()
            changed = sorted(name for name in changes if getattr(fields, name) != getattr(event.fields, name))
            if not changed:
                return event  # nothing to write: the etag stays
            await _check_people(uow, tuple(set(fields.shared_with) - set(event.fields.shared_with)))
            now = self._clock()
            updated = await uow.agenda.update(
                event_id, revision=event.revision, fields=fields, span=span_of(fields), now=now
            )
            if updated is None:  # another update committed between our read and our write
                raise _stale(event)
            names = ", ".join({"start": "start_time", "end": "end_time"}.get(n, n) for n in changed)
            await record_activity(uow, actor.user, "agenda_event.update", "agenda_event", event_id, names, now)
            await uow.commit()
        return updated

    async def delete(self, actor: Principal, event_id: int, etag: str) -> None:
        """Delete the event (every occurrence); with ``etag``, only if it is still the current one."""
        async with self._uow() as uow:
            event = await uow.agenda.get(event_id)
            if event is None or not event.visible_to(actor.user_id):
                raise _not_found(event_id)
            if event.owner_id != actor.user_id:
                raise PermissionDenied(f"event {event_id} is not yours: only its owner deletes it")
            if etag and etag != event.etag:
                raise _stale(event)
            if not await uow.agenda.delete(event_id, revision=event.revision):
                raise _stale(event)
            now = self._clock()
            await record_activity(
                uow, actor.user, "agenda_event.delete", "agenda_event", event_id, event.fields.title, now
            )
            await uow.commit()

    async def export(self, actor: Principal) -> list[AgendaEvent]:
        """Every event ``actor`` sees (their own and those shared with them), by id."""
        async with self._uow(read_only=True) as uow:
            events = await uow.agenda.visible(actor.user_id, limit=MAX_EXPORTED_EVENTS + 1)
        if len(events) > MAX_EXPORTED_EVENTS:
            raise FailedPrecondition(
                f"your agenda has more than {MAX_EXPORTED_EVENTS} events, more than one file holds",
                reason="TOO_MANY_EVENTS",
            )
        return events


def _too_many(what: str) -> FailedPrecondition:
    return FailedPrecondition(f"this range holds {what}: ask for a shorter range", reason="TOO_MANY_OCCURRENCES")


async def _check_people(uow: UnitOfWork, user_ids: tuple[int, ...]) -> None:
    """Everyone an event is newly shared with must be an enabled account."""
    if not user_ids:
        return
    known = await uow.users.enabled_ids(list(user_ids))
    unknown = sorted(set(user_ids) - known)
    if unknown:
        v = Validator()
        v.add("event.shared_with", "unknown or disabled accounts: " + ", ".join(str(u) for u in unknown))
        v.raise_if_any()
