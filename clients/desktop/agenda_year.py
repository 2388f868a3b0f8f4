"""The agenda's year: twelve small months, the days with something on them marked, holidays apart.

Twelve ``Text`` widgets whatever the number of events. A day is a tagged run (``d<ordinal>``): a click opens that
day; a month's name (``m<month>``) opens the month. The occurrences are fetched a month at a time (a year of a
daily event is more than the server expands in one answer), in a worker thread like every call.
"""

from __future__ import annotations

import calendar
import tkinter as tk
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import ttkbootstrap as ttk
from workspace.v1 import agenda_pb2
from workspace_client import Session

from . import backend

#: Months per row of the grid.
ACROSS = 4
HEADER = "Mo Tu We Th Fr Sa Su"


def year_occurrences(session: Session, year: int, zone: str) -> list[agenda_pb2.Occurrence]:
    """Every occurrence of ``year`` in ``zone``, month by month (one spanning months comes once per month)."""
    where = ZoneInfo(zone)
    found: list[agenda_pb2.Occurrence] = []
    for month in range(1, 13):
        start = datetime(year, month, 1, tzinfo=where)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=where)
        found.extend(backend.occurrences(session, start, end, zone))
    return found


def days_of(occurrence: agenda_pb2.Occurrence, zone: ZoneInfo) -> Iterator[date]:
    """The days an occurrence touches, in ``zone`` (an all-day event's dates as they are)."""
    if occurrence.all_day:
        first = date(occurrence.start_date.year, occurrence.start_date.month, occurrence.start_date.day)
        last = date(occurrence.end_date.year, occurrence.end_date.month, occurrence.end_date.day) - timedelta(days=1)
    else:
        begin = datetime.fromtimestamp(occurrence.start_time.seconds, zone)
        finish = datetime.fromtimestamp(occurrence.end_time.seconds, zone)
        first = begin.date()
        # An event ending at midnight does not touch the next day.
        last = (finish - timedelta(microseconds=1)).date() if finish > begin else first
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def day_text(parent: tk.Misc, width: int, height: int, **options: object) -> tk.Text:
    """A read-only, flat, thinly framed ``Text``: a day of the week or month, a month of the year."""
    settings: dict[str, object] = {
        "wrap": "word",
        "padx": 4,
        "pady": 4,
        "font": ("TkDefaultFont", 9),
        **options,
    }
    return tk.Text(
        parent,
        width=width,
        height=height,
        state="disabled",
        cursor="arrow",
        relief="flat",
        highlightthickness=1,
        highlightbackground="#ced4da",
        highlightcolor="#ced4da",
        **settings,
    )


class YearGrid(ttk.Frame):
    """Twelve months in a grid; ``show`` fills them from a year's occurrences."""

    def __init__(self, parent: tk.Misc, on_day: Callable[[date], None], on_month: Callable[[date], None]) -> None:
        super().__init__(parent)
        self.on_day, self.on_month = on_day, on_month
        self.year = 0
        #: Occurrences (not holidays) per day of the year shown, and the holidays' names.
        self.busy: dict[date, int] = {}
        self.holidays: dict[date, str] = {}
        self.months: list[tk.Text] = []
        for index in range(12):
            cell = day_text(self, width=len(HEADER) + 1, height=8, font="TkFixedFont", wrap="none", padx=6)
            cell.tag_configure("title", font=("TkDefaultFont", 10, "bold"), justify="center", spacing3=2)
            cell.tag_configure("weekdays", foreground="#868e96")
            cell.tag_configure("busy", font=("TkFixedFont", 9, "bold"), foreground="#ffffff", background="#4582ec")
            cell.tag_configure("holiday", foreground="#d9534f", underline=True)
            cell.tag_configure("today", foreground="#4582ec", underline=True)
            cell.bind("<Button-1>", lambda e, c=cell: self._clicked(c, e))
            cell.grid(row=index // ACROSS, column=index % ACROSS, sticky="nsew", padx=3, pady=3)
            self.months.append(cell)
        for column in range(ACROSS):
            self.columnconfigure(column, weight=1, uniform="month")
        for row in range(12 // ACROSS):
            self.rowconfigure(row, weight=1, uniform="month")

    def restyle(self, background: str, foreground: str) -> None:
        for cell in self.months:
            cell.configure(background=background, foreground=foreground)

    def show(self, year: int, occurrences: Iterable[agenda_pb2.Occurrence], zone: ZoneInfo, today: date) -> None:
        self.year = year
        self.busy, self.holidays = {}, {}
        for occurrence in _once(occurrences):
            holiday = occurrence.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY
            for day in days_of(occurrence, zone):
                if day.year != year:
                    continue
                if holiday:
                    self.holidays[day] = occurrence.title
                else:
                    self.busy[day] = self.busy.get(day, 0) + 1
        for month, cell in enumerate(self.months, start=1):
            self._fill(cell, month, today)

    def _fill(self, cell: tk.Text, month: int, today: date) -> None:
        cell.configure(state="normal")
        cell.delete("1.0", "end")
        cell.insert("end", f"{calendar.month_name[month]}\n", ("title", f"m{month}"))
        cell.insert("end", f"{HEADER}\n", ("weekdays",))
        for week in calendar.Calendar().monthdatescalendar(self.year, month):
            for weekday, day in enumerate(week):
                if weekday:
                    cell.insert("end", " ")
                if day.month != month:
                    cell.insert("end", "  ")
                    continue
                tags = [f"d{day.toordinal()}"]
                if day in self.busy:
                    tags.append("busy")
                if day in self.holidays:
                    tags.append("holiday")
                if day == today:
                    tags.append("today")
                cell.insert("end", f"{day.day:2d}", tuple(tags))
            cell.insert("end", "\n")
        cell.configure(state="disabled")

    def _clicked(self, cell: tk.Text, event: tk.Event) -> None:
        for tag in cell.tag_names(cell.index(f"@{event.x},{event.y}")):
            if tag.startswith("d") and tag[1:].isdigit():
                self.on_day(date.fromordinal(int(tag[1:])))
                return
            if tag.startswith("m") and tag[1:].isdigit():
                self.on_month(date(self.year, int(tag[1:]), 1))
                return

    def texts(self) -> list[str]:
        """What each month shows (for the tests)."""
        return [cell.get("1.0", "end-1c") for cell in self.months]

    def day_tags(self, day: date) -> set[str]:
        """The tags of a day's number in its month (``busy``, ``holiday``, ``today``), for the tests."""
        cell = self.months[day.month - 1]
        ranges = cell.tag_ranges(f"d{day.toordinal()}")
        return set(cell.tag_names(ranges[0])) - {f"d{day.toordinal()}"} if ranges else set()


def _once(occurrences: Iterable[agenda_pb2.Occurrence]) -> Iterator[agenda_pb2.Occurrence]:
    """Each occurrence once: one spanning two months came in both months' answers."""
    seen: set[tuple[int, int, str, bytes]] = set()
    for occurrence in occurrences:
        key = (
            occurrence.event_id,
            occurrence.start_time.seconds,
            occurrence.title,
            occurrence.start_date.SerializeToString(),
        )
        if key not in seen:
            seen.add(key)
            yield occurrence
