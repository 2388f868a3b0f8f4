"""Repeating events, by RFC 5545's rules: the RRULE text, and the occurrences that fall in a window.

Timed events repeat in their own time zone's wall-clock time: a weekly 09:00 Europe/Paris event is at
09:00 in Paris before and after a daylight-saving change, so its UTC instant moves by an hour. The rule is
expanded with ``dateutil.rrule`` on naive local times and each start is then placed in the zone (a wall
time that happens twice is the first one; one that does not exist, in a spring-forward gap, is read with
the offset from before the gap: RFC 5545 §3.3.5, and what ``fold=0`` does). All-day events repeat as
dates and have no zone at all.

The first occurrence is always the event's own start (weekly rules must include the start's weekday, so
that DTSTART is one of the rule's own dates, as RFC 5545 wants and dateutil assumes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dateutil import rrule


class Frequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


RRULE_FREQUENCY = {
    Frequency.DAILY: rrule.DAILY,
    Frequency.WEEKLY: rrule.WEEKLY,
    Frequency.MONTHLY: rrule.MONTHLY,
    Frequency.YEARLY: rrule.YEARLY,
}
#: Python's weekday numbers (Monday 0) to RFC 5545's two-letter names.
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class Recurrence:
    frequency: Frequency
    #: every how many days, weeks, months or years (at least 1)
    interval: int = 1
    #: weekly only: Python weekday numbers (Monday 0), sorted; empty: the start's weekday
    weekdays: tuple[int, ...] = ()
    #: the last local date an occurrence may start on, inclusive
    until: date | None = None
    #: how many occurrences at most, the first (and any exception) included
    count: int | None = None
    #: local dates whose occurrence is removed (EXDATE), sorted
    exceptions: tuple[date, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "frequency": self.frequency.value,
            "interval": self.interval,
            "weekdays": list(self.weekdays),
            "until": self.until.isoformat() if self.until else None,
            "count": self.count,
            "exceptions": [d.isoformat() for d in self.exceptions],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Recurrence:
        until, count = data.get("until"), data.get("count")
        return cls(
            frequency=Frequency(str(data["frequency"])),
            interval=int(data.get("interval") or 1),  # type: ignore[call-overload]
            weekdays=tuple(int(d) for d in data.get("weekdays") or ()),  # type: ignore[attr-defined]
            until=date.fromisoformat(str(until)) if until else None,
            count=int(count) if count else None,  # type: ignore[call-overload]
            exceptions=tuple(date.fromisoformat(str(d)) for d in data.get("exceptions") or ()),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class Schedule:
    """When an event happens: timed (``start``/``end`` instants, in ``zone``) or all-day (dates, end exclusive)."""

    all_day: bool
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    #: IANA name; may be empty for an all-day event
    time_zone: str = ""
    recurrence: Recurrence | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or "UTC")

    @property
    def duration(self) -> timedelta:
        assert self.start is not None and self.end is not None
        return self.end - self.start

    @property
    def days(self) -> int:
        assert self.start_date is not None and self.end_date is not None
        return (self.end_date - self.start_date).days

    def local_start(self) -> datetime:
        """The first start as a naive wall time (a date's midnight for an all-day event)."""
        if self.all_day:
            assert self.start_date is not None
            return datetime.combine(self.start_date, time())
        assert self.start is not None
        return self.start.astimezone(self.zone).replace(tzinfo=None)


def weekdays_of(schedule: Schedule) -> tuple[int, ...]:
    """The weekly rule's days: those given, or the start's own."""
    recurrence = schedule.recurrence
    assert recurrence is not None
    return recurrence.weekdays or (schedule.local_start().weekday(),)


def _utc_stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def rrule_text(schedule: Schedule) -> str:
    """The RFC 5545 RRULE value (without ``RRULE:``); empty for an event that does not repeat."""
    recurrence = schedule.recurrence
    if recurrence is None:
        return ""
    parts = [f"FREQ={recurrence.frequency.value}"]
    if recurrence.interval != 1:
        parts.append(f"INTERVAL={recurrence.interval}")
    if recurrence.frequency is Frequency.WEEKLY:
        parts.append("BYDAY=" + ",".join(WEEKDAY_CODES[d] for d in weekdays_of(schedule)))
    if recurrence.until is not None:
        if schedule.all_day:
            parts.append(f"UNTIL={recurrence.until:%Y%m%d}")
        else:  # with a zoned DTSTART, UNTIL is in UTC: the last instant of the until date in the event's zone
            parts.append(f"UNTIL={_utc_stamp(last_instant_of(recurrence.until, schedule.zone))}")
    if recurrence.count is not None:
        parts.append(f"COUNT={recurrence.count}")
    return ";".join(parts)


def last_instant_of(day: date, zone: ZoneInfo) -> datetime:
    """The last second of ``day`` in ``zone``, as an aware UTC instant."""
    return _place(datetime.combine(day, time(23, 59, 59)), zone)


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall time in ``zone`` as a UTC instant (fold 0: the first of a repeated hour, the offset from
    before a gap)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _rule(schedule: Schedule, dtstart: datetime) -> rrule.rrule:
    recurrence = schedule.recurrence
    assert recurrence is not None
    byweekday = weekdays_of(schedule) if recurrence.frequency is Frequency.WEEKLY else None
    until = datetime.combine(recurrence.until, time(23, 59, 59)) if recurrence.until else None
    return rrule.rrule(
        RRULE_FREQUENCY[recurrence.frequency],
        dtstart=dtstart,
        interval=recurrence.interval,
        wkst=rrule.MO,
        byweekday=byweekday,
        until=until,
        count=recurrence.count,
        cache=False,
    )


def _skip_ahead(schedule: Schedule, first: datetime, lowest: datetime) -> datetime:
    """A later start for the rule that yields the same occurrences from ``lowest`` on, so that a daily or
    weekly series begun decades ago is not walked from its beginning. Only for rules without a count (a
    count is counted from the real start), and only by whole periods (days, or weeks for weekly rules, so
    the week's phase and the weekdays stay the same)."""
    recurrence = schedule.recurrence
    assert recurrence is not None
    if recurrence.count is not None or recurrence.frequency not in (Frequency.DAILY, Frequency.WEEKLY):
        return first
    period = recurrence.interval * (7 if recurrence.frequency is Frequency.WEEKLY else 1)
    if recurrence.frequency is Frequency.WEEKLY:
        first_monday = first - timedelta(days=first.weekday())
        periods = (lowest - first_monday).days // period - 1
        if periods <= 0:
            return first
        # The Monday of a week of the same phase: its occurrences are then found from that week on.
        start_of_week = first_monday + timedelta(days=periods * period)
        return start_of_week.replace(hour=first.hour, minute=first.minute, second=first.second)
    periods = (lowest - first).days // period - 1
    return first + timedelta(days=periods * period) if periods > 0 else first


def local_starts(schedule: Schedule, lowest: datetime, highest: datetime) -> Iterator[datetime]:
    """The occurrences' naive wall-clock starts within [``lowest``, ``highest``], exceptions removed."""
    first = schedule.local_start()
    if schedule.recurrence is None:
        if lowest <= first <= highest:
            yield first
        return
    # A skipped-ahead weekly start is a Monday that may not be one of the rule's days: dateutil then yields
    # only the rule's days of that week and after, which is what is wanted here (not the first occurrence).
    rule = _rule(schedule, _skip_ahead(schedule, first, lowest))
    exceptions = set(schedule.recurrence.exceptions)
    for start in rule.xafter(max(lowest, first), inc=True):
        if start > highest:
            return
        if start.date() not in exceptions:
            yield start


def all_starts(schedule: Schedule, limit: int) -> list[datetime]:
    """Every naive wall-clock start of a finite series (count or until), at most ``limit``, exceptions kept
    (for the series' last occurrence)."""
    if schedule.recurrence is None:
        return [schedule.local_start()]
    return list(_rule(schedule, schedule.local_start()).xafter(schedule.local_start(), count=limit, inc=True))


@dataclass(frozen=True)
class Placed:
    """One occurrence placed in time: instants for every event, dates too for all-day ones."""

    start: datetime
    end: datetime
    start_date: date | None = None
    end_date: date | None = None


def occurrences(schedule: Schedule, window_start: datetime, window_end: datetime, viewer: ZoneInfo) -> Iterator[Placed]:
    """Every occurrence that overlaps [``window_start``, ``window_end``): starts before its end and ends
    after its start (one ending exactly at ``window_start`` does not). All-day occurrences are the days'
    midnights in the ``viewer``'s zone."""
    if schedule.all_day:
        days = timedelta(days=schedule.days)
        lowest = window_start.astimezone(viewer).replace(tzinfo=None) - days - timedelta(days=1)
        highest = window_end.astimezone(viewer).replace(tzinfo=None) + timedelta(days=1)
        for start in local_starts(schedule, lowest, highest):
            first_day, end_day = start.date(), start.date() + days
            begins, ends = midnight(first_day, viewer), midnight(end_day, viewer)
            if begins < window_end and ends > window_start:
                yield Placed(begins, ends, first_day, end_day)
        return
    zone, duration = schedule.zone, schedule.duration
    # Local bounds with a day's margin either side (offsets and DST), then the exact test in UTC.
    lowest = (window_start - duration).astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    highest = window_end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    for start in local_starts(schedule, lowest, highest):
        begins = _place(start, zone)
        if begins < window_end and begins + duration > window_start:
            yield Placed(begins, begins + duration)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of ``day`` in ``zone``, as a UTC instant."""
    return _place(datetime.combine(day, time()), zone)
