"""Agenda: a year, a month, a week or one day of ``ListEvents`` occurrences, holidays read-only; create, edit,
share and delete events, skip one occurrence of a repeating event, export the agenda as an iCalendar file.
What others change shows when the tab comes to the front, every minute while it is shown, and on Refresh.

Each day is one ``Text`` column (seven at most, whatever the number of events); an occurrence is a tagged run
of text: a click opens its event in the form beside the week, a right click offers to delete it (only that
occurrence, or the whole series). The form has three tabs: the event, how it repeats (end, skipped dates), and
who sees it (only me, everyone, or people chosen in a filtered list).
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from tkinter import filedialog
from zoneinfo import ZoneInfo

import grpc
import ttkbootstrap as ttk
from google.type import date_pb2
from workspace.v1 import agenda_pb2, users_pb2
from workspace_client import CallFailed, Session
from workspace_client.tk_bridge import Controller

from . import backend
from .agenda_year import YearGrid, day_text, year_occurrences
from .people import PeoplePicker, person

COLOURS = {
    "Blue": "#3A87AD",
    "Green": "#2FB344",
    "Orange": "#F59F00",
    "Red": "#D63939",
    "Purple": "#AE3EC9",
    "Grey": "#6C757D",
}
REPEATS = {
    "Does not repeat": agenda_pb2.RECURRENCE_FREQUENCY_UNSPECIFIED,
    "Every day": agenda_pb2.RECURRENCE_FREQUENCY_DAILY,
    "Every week": agenda_pb2.RECURRENCE_FREQUENCY_WEEKLY,
    "Every month": agenda_pb2.RECURRENCE_FREQUENCY_MONTHLY,
    "Every year": agenda_pb2.RECURRENCE_FREQUENCY_YEARLY,
}
#: How a repeating event ends (``Recurrence.until_date`` or ``count``).
NEVER, ON_DATE, AFTER = "Never", "On date", "After N times"
#: Who sees an event.
ONLY_ME, EVERYONE, CHOSEN = "Only me", "Everyone", "Chosen people"
#: The server's limit on ``Recurrence.count``.
COUNT_MAX = 1000
CONFIRM_MS = 4000
#: While the agenda is shown, it is read again this often (ms): others' changes are not pushed.
REFRESH_MS = 60_000


def to_date(value: date_pb2.Date) -> date:
    return date(value.year, value.month, value.day)


def from_date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def occurrence_day(occurrence: agenda_pb2.Occurrence) -> date:
    """The date an occurrence starts on in its event's time zone: what an exception date names."""
    if occurrence.all_day:
        return to_date(occurrence.start_date)
    return datetime.fromtimestamp(occurrence.start_time.seconds, ZoneInfo(occurrence.time_zone or "UTC")).date()


class AgendaView(ttk.Frame):
    def __init__(
        self, parent: tk.Misc, controller: Controller, session: Session, on_error: Callable[[Exception, str], None]
    ) -> None:
        super().__init__(parent, padding=10)
        self.controller, self.session, self.on_error = controller, session, on_error
        self.zone_name = backend.local_zone()
        self.zone = ZoneInfo(self.zone_name)
        today = datetime.now(self.zone).date()
        self.day = today
        self.mode = "week"
        self.occurrences: list[agenda_pb2.Occurrence] = []
        self.event: agenda_pb2.AgendaEvent | None = None
        #: The skipped dates of the event in the form (sent back with it when it is saved).
        self.exceptions: list[date] = []
        self.loads = 0
        self._people_asked = False
        self._delete_when_open = 0  # "Delete the whole series" from the menu: arm Delete once the event is open
        self._confirm: str | None = None
        self._build()
        self.bind("<Destroy>", self._destroyed, add="+")
        self.bind("<Map>", self._mapped, add="+")
        self._refresh = self.after(REFRESH_MS, self._refresh_tick)

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is not self:
            return
        self.after_cancel(self._refresh)
        if self._confirm is not None:
            self.after_cancel(self._confirm)
            self._confirm = None

    # --- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        form = ttk.Labelframe(self, text="New event", padding=10)
        form.pack(side="right", fill="y", padx=(10, 0))
        self.form = form
        self._build_form(form)

        left = ttk.Frame(self)
        left.pack(side="left", fill="both", expand=True)
        nav = ttk.Frame(left)
        nav.pack(fill="x", pady=(0, 6))
        self.previous_button = ttk.Button(nav, text="◀", width=3, command=lambda: self.shift(-1))
        self.previous_button.configure(bootstyle="secondary-outline")
        self.previous_button.pack(side="left")
        self.today_button = ttk.Button(nav, text="Today", command=self.today, bootstyle="secondary-outline")
        self.today_button.pack(side="left", padx=4)
        self.next_button = ttk.Button(nav, text="▶", width=3, command=lambda: self.shift(1))
        self.next_button.configure(bootstyle="secondary-outline")
        self.next_button.pack(side="left")
        self.export_button = ttk.Button(nav, text="Export…", command=self.export, bootstyle="secondary-outline")
        self.export_button.pack(side="left", padx=(12, 0))
        self.refresh_button = ttk.Button(nav, text="⟳ Refresh", command=self.load, bootstyle="secondary-outline")
        self.refresh_button.pack(side="left", padx=(4, 0))
        # Under the buttons: what is shown (left) and the view (right), so a small window keeps all of them.
        heading = ttk.Frame(left)
        heading.pack(fill="x", pady=(0, 6))
        self.range_label = ttk.Label(heading, text="", font=("TkDefaultFont", 13, "bold"))
        self.range_label.pack(side="left")
        self.mode_choice = tk.StringVar(value="week")
        self.mode_buttons: dict[str, ttk.Radiobutton] = {}
        for label, value in (("Year", "year"), ("Month", "month"), ("Week", "week"), ("Day", "day")):
            self.mode_buttons[value] = ttk.Radiobutton(
                heading,
                text=label,
                value=value,
                variable=self.mode_choice,
                command=self._mode_changed,
                bootstyle="toolbutton",
            )
            self.mode_buttons[value].pack(side="right")

        self.grid_frame = ttk.Frame(left)
        self.grid_frame.pack(fill="both", expand=True)
        self.headers: list[ttk.Label] = []
        self.columns: list[tk.Text] = []
        for index in range(7):
            header = ttk.Label(
                self.grid_frame, text="", anchor="center", justify="center", font=("TkDefaultFont", 10, "bold")
            )
            header.grid(row=0, column=index, sticky="ew", pady=(0, 2))
            column = self._cell(self.grid_frame, width=14)
            column.grid(row=1, column=index, sticky="nsew", padx=1)
            self.grid_frame.columnconfigure(index, weight=1, uniform="day")
            self.headers.append(header)
            self.columns.append(column)
        self.grid_frame.rowconfigure(1, weight=1)
        self.menu = tk.Menu(self, tearoff=False)

        # The month: six rows of seven small cells, made once (42 widgets whatever the number of events).
        self.month_frame = ttk.Frame(left)
        self.month_cells: list[tk.Text] = []
        for index, name in enumerate("Mon Tue Wed Thu Fri Sat Sun".split()):
            ttk.Label(self.month_frame, text=name, anchor="center", font=("TkDefaultFont", 10, "bold")).grid(
                row=0, column=index, sticky="ew", pady=(0, 2)
            )
            self.month_frame.columnconfigure(index, weight=1, uniform="day")
        for week in range(6):
            for weekday in range(7):
                cell = self._cell(self.month_frame, width=10, height=4)
                cell.grid(row=week + 1, column=weekday, sticky="nsew", padx=1, pady=1)
                self.month_cells.append(cell)
            self.month_frame.rowconfigure(week + 1, weight=1, uniform="week")
        self.year_grid = YearGrid(left, on_day=lambda day: self.show_period("day", day), on_month=self.open_month)
        self.restyle()

    def _cell(self, parent: tk.Misc, width: int, height: int = 10) -> tk.Text:
        """One day: a read-only Text whose occurrences are tagged runs (``o<index>``) that can be clicked."""
        cell = day_text(parent, width, height)
        cell.tag_configure("time", font=("TkDefaultFont", 8, "bold"))
        cell.tag_configure("holiday", font=("TkDefaultFont", 9, "italic"), foreground="#868e96")
        cell.tag_configure("where", font=("TkDefaultFont", 8), foreground="#868e96")
        cell.tag_configure("empty", foreground="#adb5bd", justify="center")
        cell.tag_configure("daynum", font=("TkDefaultFont", 9, "bold"), justify="right")
        cell.tag_configure("other-month", foreground="#adb5bd")
        cell.tag_configure("today", foreground="#4582ec")
        cell.bind("<Button-1>", lambda e, c=cell: self._clicked(c, e))
        right = ("<Button-2>", "<Button-3>") if cell.tk.call("tk", "windowingsystem") == "aqua" else ("<Button-3>",)
        for button in right:  # the right button (macOS numbers it 2)
            cell.bind(button, lambda e, c=cell: self._menu_at(c, e))
        return cell

    def restyle(self) -> None:
        """The day cells in the theme's colours (Text widgets are not themed by ttk)."""
        style = ttk.Style()
        background = style.lookup("TEntry", "fieldbackground") or "white"
        foreground = style.lookup("TLabel", "foreground") or "black"
        for cell in (*self.columns, *self.month_cells):
            cell.configure(background=background, foreground=foreground)
        self.year_grid.restyle(background, foreground)
        self.menu.configure(background=background, foreground=foreground)

    def _build_form(self, form: ttk.Labelframe) -> None:
        """The form: whose event it is (when not yours), three tabs (the event, how it repeats, who sees it),
        then New / Delete / Save and a line that says what happened."""
        self.fields: dict[str, ttk.Entry] = {}
        self.owner_line = ttk.Label(form, text="", bootstyle="info", wraplength=260, justify="left")
        self.owner_line.grid(row=0, column=0, sticky="w", pady=(0, 6))
        self.owner_line.grid_remove()
        self.tabs = ttk.Notebook(form)
        self.tabs.grid(row=1, column=0, sticky="nsew")
        form.columnconfigure(0, weight=1)
        self.details_tab = ttk.Frame(self.tabs, padding=(8, 8))
        self.repeats_tab = ttk.Frame(self.tabs, padding=(8, 8))
        self.sharing_tab = ttk.Frame(self.tabs, padding=(8, 8))
        self.tabs.add(self.details_tab, text="Event")
        self.tabs.add(self.repeats_tab, text="Repeats")
        self.tabs.add(self.sharing_tab, text="Sharing")
        self._build_details(self.details_tab)
        self._build_repeats(self.repeats_tab)
        self._build_sharing(self.sharing_tab)
        for tab in (self.details_tab, self.repeats_tab, self.sharing_tab):
            tab.columnconfigure(2, weight=1)

        buttons = ttk.Frame(form)
        buttons.grid(row=2, column=0, sticky="ew", pady=(10, 0))
        self.save_button = ttk.Button(buttons, text="Create", command=self.save, bootstyle="primary", width=9)
        self.save_button.pack(side="right")
        self.delete_button = ttk.Button(buttons, text="Delete", command=self.delete, bootstyle="danger-link")
        self.delete_button.pack(side="right", padx=4)
        self.new_button = ttk.Button(buttons, text="New", command=self.new_event, bootstyle="secondary-link")
        self.new_button.pack(side="left")
        self.result = ttk.Label(form, text="", bootstyle="secondary", wraplength=260, justify="left")
        self.result.grid(row=3, column=0, sticky="w", pady=(8, 0))
        ttk.Label(form, text=f"Times are in {self.zone_name}.", bootstyle="secondary").grid(
            row=4, column=0, sticky="w", pady=(8, 0)
        )
        self._update_form_state()

    def _field(self, parent: tk.Misc, row: int, label: str, key: str, width: int = 14) -> ttk.Entry:
        ttk.Label(parent, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
        entry = ttk.Entry(parent, width=width)
        entry.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
        self.fields[key] = entry
        return entry

    def _choice(self, parent: tk.Misc, row: int, label: str, values: list[str], value: str) -> ttk.Combobox:
        ttk.Label(parent, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
        box = ttk.Combobox(parent, values=values, state="readonly", width=12)
        box.set(value)
        box.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
        box.bind("<<ComboboxSelected>>", lambda _e: self._update_form_state(), add="+")
        return box

    def _build_details(self, tab: ttk.Frame) -> None:
        self._field(tab, 0, "Title", "title")
        self._field(tab, 1, "Date", "date").insert(0, self.day.isoformat())
        self.all_day = tk.BooleanVar(value=False)
        self.all_day_box = ttk.Checkbutton(tab, text="All day", variable=self.all_day, command=self._all_day_changed)
        self.all_day_box.grid(row=2, column=1, sticky="w", pady=2)
        self._field(tab, 3, "From", "start").insert(0, "09:00")
        self._field(tab, 4, "To", "end").insert(0, "10:00")
        self.end_label = tab.grid_slaves(row=4, column=0)[0]
        self._field(tab, 5, "Location", "location")
        self.colour = self._choice(tab, 6, "Colour", list(COLOURS), "Blue")

    def _build_repeats(self, tab: ttk.Frame) -> None:
        self.repeat = self._choice(tab, 0, "Repeats", list(REPEATS), "Does not repeat")
        self.ends = self._choice(tab, 1, "Ends", [NEVER, ON_DATE, AFTER], NEVER)
        self.end_value_label = ttk.Label(tab, text="")
        self.end_value_label.grid(row=2, column=0, sticky="w", padx=(0, 8), pady=2)
        self.until_text, self.count_text = tk.StringVar(), tk.StringVar()
        self.fields["until"] = ttk.Entry(tab, width=11, textvariable=self.until_text)
        self.fields["count"] = ttk.Entry(tab, width=6, textvariable=self.count_text)
        for key in ("until", "count"):
            self.fields[key].grid(row=2, column=1, sticky="w", pady=2)
        self.end_hint = ttk.Label(tab, text="", bootstyle="secondary")
        self.end_hint.grid(row=2, column=2, sticky="w", padx=(6, 0))
        # Typing an end picks the matching choice (a number: "after N times"; a date: "on date").
        self.until_text.trace_add("write", lambda *_: self._end_typed(self.until_text, ON_DATE))
        self.count_text.trace_add("write", lambda *_: self._end_typed(self.count_text, AFTER))

        ttk.Label(tab, text="Skipped").grid(row=3, column=0, sticky="nw", padx=(0, 8), pady=(8, 2))
        self.skipped = ttk.Treeview(tab, show="tree", selectmode="browse", height=4)
        self.skipped.column("#0", width=150)
        self.skipped.grid(row=3, column=1, columnspan=2, sticky="ew", pady=(8, 2))
        self.restore_button = ttk.Button(
            tab, text="Restore", command=self.restore_occurrence, bootstyle="secondary-outline"
        )
        self.restore_button.grid(row=4, column=1, sticky="w", pady=2)
        self.skipped.bind("<<TreeviewSelect>>", lambda _e: self._update_form_state(), add="+")
        ttk.Label(
            tab,
            text="Right-click an occurrence in the calendar to delete only that one; Restore brings it back.",
            bootstyle="secondary",
            wraplength=240,
            justify="left",
        ).grid(row=5, column=0, columnspan=3, sticky="w", pady=(8, 0))

    def _build_sharing(self, tab: ttk.Frame) -> None:
        self.share_choice = self._choice(tab, 0, "Seen by", [ONLY_ME, EVERYONE, CHOSEN], ONLY_ME)
        self.share_choice.bind("<<ComboboxSelected>>", lambda _e: self._share_changed(), add="+")
        self.share_hint = ttk.Label(tab, text="", bootstyle="secondary", wraplength=240, justify="left")
        self.share_hint.grid(row=1, column=0, columnspan=3, sticky="w", pady=(8, 0))
        self.picker = PeoplePicker(tab, on_change=self._update_tabs)
        self.picker.grid(row=2, column=0, columnspan=3, sticky="nsew", pady=(8, 0))

    # --- the range -----------------------------------------------------------------------------------------

    def days(self) -> list[date]:
        if self.mode == "day":
            return [self.day]
        if self.mode == "month":
            first = self.day.replace(day=1)
            last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            start = first - timedelta(days=first.weekday())
            end = last + timedelta(days=6 - last.weekday())
            return [start + timedelta(days=i) for i in range((end - start).days + 1)]
        monday = self.day - timedelta(days=self.day.weekday())
        return [monday + timedelta(days=i) for i in range(7)]

    def shift(self, step: int) -> None:
        if self.mode == "year":
            self.day = date(self.day.year + step, self.day.month, 1)
        elif self.mode == "month":
            month = self.day.year * 12 + self.day.month - 1 + step
            self.day = date(month // 12, month % 12 + 1, 1)
        else:
            self.day += timedelta(days=step * (1 if self.mode == "day" else 7))
        self.load()

    def cells(self) -> list[tk.Text]:
        """The Text of each day shown, in order (in the year, each month's)."""
        if self.mode == "year":
            return self.year_grid.months
        return self.month_cells[: len(self.days())] if self.mode == "month" else self.columns[: len(self.days())]

    def today(self) -> None:
        self.day = datetime.now(self.zone).date()
        self.load()

    def _mode_changed(self) -> None:
        self.mode = self.mode_choice.get()
        self.load()

    def show_period(self, mode: str, day: date) -> None:
        """Shows ``day`` in the year, month, week or day view (a day clicked in the year opens that day)."""
        self.mode, self.day = mode, day
        self.mode_choice.set(mode)
        self.load()

    def open_month(self, first: date) -> None:
        self.show_period("month", first)

    def _mapped(self, event: tk.Event) -> None:
        if event.widget is self:  # the Agenda tab came to the front: what others changed meanwhile shows
            self.load()

    def _refresh_tick(self) -> None:
        if self.winfo_viewable():
            self.load()
        self._refresh = self.after(REFRESH_MS, self._refresh_tick)

    def load(self) -> None:
        if self.mode == "year":
            self._load_year()
            return
        self.year_grid.pack_forget()
        days = self.days()
        start = datetime.combine(days[0], time(), self.zone)
        end = datetime.combine(days[-1] + timedelta(days=1), time(), self.zone)
        if self.mode == "day":
            self.range_label.configure(text=days[0].strftime("%A %d %B %Y"))
        elif self.mode == "month":
            self.range_label.configure(text=self.day.strftime("%B %Y"))
        else:
            self.range_label.configure(text=f"{days[0]:%d %b} - {days[-1]:%d %b %Y}")
        if self.mode == "month":
            self.grid_frame.pack_forget()
            self.month_frame.pack(fill="both", expand=True)
            for index, cell in enumerate(self.month_cells):
                if index < len(days):
                    cell.grid()
                else:
                    cell.grid_remove()
            for week in range(6):  # a five-week month gives the sixth row's room to the others
                used = week * 7 < len(days)
                self.month_frame.rowconfigure(week + 1, weight=1 if used else 0, uniform="week" if used else "")
        else:
            self.month_frame.pack_forget()
            self.grid_frame.pack(fill="both", expand=True)
        today = datetime.now(self.zone).date()
        for index, header in enumerate(self.headers):
            if index < len(days):
                header.configure(
                    text=f"{days[index]:%a}\n{days[index]:%d}", foreground="#4582ec" if days[index] == today else ""
                )
                header.grid()
                self.columns[index].grid()
                self.grid_frame.columnconfigure(index, weight=1)
            else:
                header.grid_remove()
                self.columns[index].grid_remove()
                self.grid_frame.columnconfigure(index, weight=0)

        def done(found: list[agenda_pb2.Occurrence]) -> None:
            if self.days() != days:
                return
            self.occurrences = found
            self._fill(days)
            self.loads += 1

        self.controller.run(
            lambda: backend.occurrences(self.session, start, end, self.zone_name), done, self._failed("load the agenda")
        )
        if not self._people_asked:
            self.load_people()

    def _load_year(self) -> None:
        year = self.day.year
        self.range_label.configure(text=str(year))
        self.grid_frame.pack_forget()
        self.month_frame.pack_forget()
        self.year_grid.pack(fill="both", expand=True)

        def done(found: list[agenda_pb2.Occurrence]) -> None:
            if self.mode != "year" or self.day.year != year:
                return
            self.occurrences = []  # the year's cells hold days, not occurrences
            self.year_grid.show(year, found, self.zone, datetime.now(self.zone).date())
            self.loads += 1

        self.controller.run(
            lambda: year_occurrences(self.session, year, self.zone_name), done, self._failed("load the year")
        )

    def load_people(self) -> None:
        """The directory, for the people picker and the names of owners (again whenever "Chosen people" is
        picked, so that someone new is there)."""
        self._people_asked = True
        self.controller.run(lambda: backend.directory(self.session), self._got_people, self._failed("load people"))

    def _got_people(self, users: list[users_pb2.User]) -> None:
        self.picker.set_people(users, self.session.user.id if self.session.user is not None else 0)
        self._update_form_state()

    def _failed(self, doing: str) -> Callable[[Exception], None]:
        return lambda error: self.on_error(error, doing)

    def _fill(self, days: list[date]) -> None:
        month = self.mode == "month"
        today = datetime.now(self.zone).date()
        for day, column in zip(days, self.cells(), strict=True):
            column.configure(state="normal")
            column.delete("1.0", "end")
            if month:
                shade = "today" if day == today else "other-month" if day.month != self.day.month else ""
                column.insert("end", f"{day.day}\n", ("daynum", shade) if shade else ("daynum",))
            shown = 0
            for number, occurrence in enumerate(self.occurrences):
                if not self._on(occurrence, day):
                    continue
                shown += 1
                tag = f"o{number}"
                colour = occurrence.color or COLOURS["Blue"]
                column.tag_configure(tag, foreground=colour, lmargin1=2, lmargin2=2, spacing1=3)
                if occurrence.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY:
                    column.insert("end", f"{occurrence.title}\n", ("holiday", tag))
                    continue
                mark = " ↻" if occurrence.recurring else ""
                if month:  # one line each: the time and the title
                    begin = datetime.fromtimestamp(occurrence.start_time.seconds, self.zone)
                    when = "" if occurrence.all_day else f"{begin:%H:%M} "
                    column.insert("end", when, ("time", tag))
                    column.insert("end", f"{occurrence.title}{mark}\n", (tag,))
                    continue
                if occurrence.all_day:
                    column.insert("end", "All day\n", ("time", tag))
                else:
                    begin = datetime.fromtimestamp(occurrence.start_time.seconds, self.zone)
                    finish = datetime.fromtimestamp(occurrence.end_time.seconds, self.zone)
                    column.insert("end", f"{begin:%H:%M} - {finish:%H:%M}\n", ("time", tag))
                column.insert("end", f"{occurrence.title}{mark}\n", (tag,))
                if occurrence.location:
                    column.insert("end", f"{occurrence.location}\n", ("where", tag))
            if not shown and not month:
                column.insert("end", "\n—", ("empty",))
            column.configure(state="disabled")

    def _on(self, occurrence: agenda_pb2.Occurrence, day: date) -> bool:
        if occurrence.all_day:
            return to_date(occurrence.start_date) <= day < to_date(occurrence.end_date)
        begin = datetime.fromtimestamp(occurrence.start_time.seconds, self.zone)
        finish = datetime.fromtimestamp(occurrence.end_time.seconds, self.zone)
        day_start = datetime.combine(day, time(), self.zone)
        return begin < day_start + timedelta(days=1) and finish > day_start

    def texts(self) -> list[str]:
        """What each day's column shows (for people reading the tests, and the tests)."""
        return [cell.get("1.0", "end-1c") for cell in self.cells()]

    # --- the form ------------------------------------------------------------------------------------------

    def _occurrence_at(self, column: tk.Text, event: tk.Event) -> agenda_pb2.Occurrence | None:
        index = column.index(f"@{event.x},{event.y}")
        for tag in column.tag_names(index):
            if tag.startswith("o") and tag[1:].isdigit():
                return self.occurrences[int(tag[1:])]
        return None

    def _clicked(self, column: tk.Text, event: tk.Event) -> None:
        occurrence = self._occurrence_at(column, event)
        if occurrence is not None:
            self.select(occurrence)

    def select(self, occurrence: agenda_pb2.Occurrence) -> None:
        """Opens an occurrence's event in the form (a holiday only says what it is)."""
        if occurrence.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY:
            self.result.configure(text=f"{occurrence.title}: a public holiday.", bootstyle="secondary")
            return
        self.open_event(occurrence.event_id)

    def open_event(self, event_id: int) -> None:
        self.controller.run(
            lambda: backend.agenda_event(self.session, event_id), self.edit, self._failed("open the event")
        )

    def edit(self, event: agenda_pb2.AgendaEvent) -> None:
        self.event = event
        self.form.configure(text="Event" if event.read_only else "Edit event")
        self._set("title", event.title)
        self._set("location", event.location)
        self.all_day.set(event.all_day)
        if event.all_day:
            self._set("date", to_date(event.start_date).isoformat())
            self._set("start", "")
            self._set("end", (to_date(event.end_date) - timedelta(days=1)).isoformat())
        else:
            begin = datetime.fromtimestamp(event.start_time.seconds, self.zone)
            finish = datetime.fromtimestamp(event.end_time.seconds, self.zone)
            self._set("date", begin.date().isoformat())
            self._set("start", f"{begin:%H:%M}")
            self._set("end", f"{finish:%H:%M}")
        self.colour.set(next((k for k, v in COLOURS.items() if v == event.color.upper()), "Blue"))
        recurrence = event.recurrence
        frequency = recurrence.frequency if event.HasField("recurrence") else 0
        self.repeat.set(next(k for k, v in REPEATS.items() if v == frequency))
        self._set("until", to_date(recurrence.until_date).isoformat() if recurrence.HasField("until_date") else "")
        self._set("count", str(recurrence.count) if recurrence.count else "")
        self.ends.set(ON_DATE if recurrence.HasField("until_date") else AFTER if recurrence.count else NEVER)
        self.exceptions = sorted(to_date(d) for d in recurrence.exception_dates)
        self.share_choice.set(EVERYONE if event.shared_with_everyone else CHOSEN if event.shared_with else ONLY_ME)
        self.picker.choose(event.shared_with)
        self.result.configure(text="", bootstyle="secondary")
        self._update_form_state()
        if self._delete_when_open == event.id and not event.read_only:
            self._delete_when_open = 0
            self.delete()  # the first click: "Confirm" is armed
            self.result.configure(
                text=f"Delete every occurrence of “{event.title}”? Click Confirm.", bootstyle="danger"
            )

    def _set(self, key: str, value: str) -> None:
        self.fields[key].configure(state="normal")  # the callers set the states again afterwards
        self.fields[key].delete(0, "end")
        self.fields[key].insert(0, value)

    def new_event(self) -> None:
        self.event = None
        self.form.configure(text="New event")
        for key in ("title", "location", "count", "until"):
            self._set(key, "")
        self._set("date", self.day.isoformat())
        self.all_day.set(False)
        self._set("start", "09:00")
        self._set("end", "10:00")
        self.repeat.set("Does not repeat")
        self.ends.set(NEVER)
        self.exceptions = []
        self.colour.set("Blue")
        self.share_choice.set(ONLY_ME)
        self.picker.choose(set())
        self.result.configure(text="")
        self._update_form_state()

    def _all_day_changed(self) -> None:
        if self.all_day.get():
            self._set("start", "")
            self._set("end", self.fields["date"].get())
        else:
            self._set("start", "09:00")
            self._set("end", "10:00")
        self._update_form_state()

    def _end_typed(self, text: tk.StringVar, choice: str) -> None:
        if text.get().strip() and self.ends.get() == NEVER:
            self.ends.set(choice)
            self._update_form_state()

    def _share_changed(self) -> None:
        if self.share_choice.get() == CHOSEN:
            self.load_people()  # someone may have joined since
            self.picker.filter.focus_set()

    def _update_form_state(self) -> None:
        editable = self.event is None or not self.event.read_only
        typing = "normal" if editable else "disabled"
        choosing = "readonly" if editable else "disabled"
        for entry in self.fields.values():
            entry.configure(state=typing)
        if self.all_day.get():
            self.fields["start"].configure(state="disabled")
        self.end_label.configure(text="Last day" if self.all_day.get() else "To")
        self.all_day_box.configure(state=typing)
        for box in (self.colour, self.repeat, self.share_choice):
            box.configure(state=choosing)

        repeating = bool(REPEATS[self.repeat.get()])
        self.ends.configure(state=choosing if repeating else "disabled")
        ends = self.ends.get() if repeating else NEVER
        for key, shown in (("until", ends == ON_DATE), ("count", ends == AFTER)):
            if shown:
                self.fields[key].grid()
            else:
                self.fields[key].grid_remove()
        self.end_value_label.configure(text={ON_DATE: "Last", AFTER: "After"}.get(ends, ""))
        self.end_hint.configure(text={ON_DATE: "YYYY-MM-DD", AFTER: f"times (1-{COUNT_MAX})"}.get(ends, ""))
        self._fill_exceptions()
        chosen = bool(self.skipped.selection())
        restorable = editable and self.event is not None and repeating and chosen
        self.restore_button.configure(state="normal" if restorable else "disabled")

        sharing = self.share_choice.get()
        if sharing == CHOSEN:
            self.share_hint.grid_remove()
            self.picker.grid()
        else:
            self.picker.grid_remove()
            self.share_hint.grid()
            hint = "Only you see it." if sharing == ONLY_ME else "Everyone in the workspace sees it."
            self.share_hint.configure(text=hint)
        self.picker.set_enabled(editable)

        if self.event is not None and self.event.read_only:
            owner = self.picker.people.get(self.event.owner_id)
            whose = f"{person(owner)}'s event" if owner is not None else "Someone else's event"
            self.owner_line.configure(text=f"{whose}, shared with you: only they can change it.")
            self.owner_line.grid()
        else:
            self.owner_line.grid_remove()
        self.save_button.configure(text="Create" if self.event is None else "Save")
        self.save_button.configure(state="normal" if editable else "disabled")
        deletable = self.event is not None and not self.event.read_only
        self.delete_button.configure(state="normal" if deletable else "disabled", text="Delete")
        self._update_tabs()

    def _update_tabs(self) -> None:
        """The tabs' titles say what the hidden tabs hold: ↻ when it repeats, who sees it."""
        self.tabs.tab(self.repeats_tab, text="Repeats ↻" if REPEATS[self.repeat.get()] else "Repeats")
        sharing = self.share_choice.get()
        if sharing == EVERYONE:
            title = "Shared: everyone"
        elif sharing == CHOSEN:
            title = f"Shared ({len(self.picker.chosen)})"
        else:
            title = "Sharing"
        self.tabs.tab(self.sharing_tab, text=title)

    def _fill_exceptions(self) -> None:
        """The skipped dates, one row each (at most 500, the server's limit)."""
        wanted = [d.isoformat() for d in self.exceptions]
        if list(self.skipped.get_children()) == wanted:
            return
        self.skipped.delete(*self.skipped.get_children())
        for day in self.exceptions:
            self.skipped.insert("", "end", iid=day.isoformat(), text=f"{day:%a %d %b %Y}")

    def _read_form(self) -> agenda_pb2.AgendaEvent:
        """The event the form describes; ``ValueError`` with a sentence when a field cannot be read."""
        event = agenda_pb2.AgendaEvent(
            title=self.fields["title"].get().strip(),
            location=self.fields["location"].get().strip(),
            color=COLOURS[self.colour.get()],
            time_zone=self.zone_name,
        )
        try:
            day = date.fromisoformat(self.fields["date"].get().strip())
        except ValueError:
            raise ValueError("The date is YYYY-MM-DD, e.g. 2026-03-31.") from None
        if self.all_day.get():
            try:
                last = date.fromisoformat(self.fields["end"].get().strip() or day.isoformat())
            except ValueError:
                raise ValueError("The last day is YYYY-MM-DD, e.g. 2026-03-31.") from None
            event.start_date.CopyFrom(from_date(day))
            event.end_date.CopyFrom(from_date(last + timedelta(days=1)))
        else:
            try:
                begin = time.fromisoformat(self.fields["start"].get().strip())
                finish = time.fromisoformat(self.fields["end"].get().strip())
            except ValueError:
                raise ValueError("Times are HH:MM, e.g. 09:30.") from None
            event.start_time.FromDatetime(datetime.combine(day, begin, self.zone))
            end_day = day if finish > begin else day + timedelta(days=1)
            event.end_time.FromDatetime(datetime.combine(end_day, finish, self.zone))
        frequency = REPEATS[self.repeat.get()]
        if frequency:
            event.recurrence.frequency = frequency  # type: ignore[assignment]
            self._read_end(event.recurrence, day)
            event.recurrence.exception_dates.extend(from_date(d) for d in self.exceptions)
        sharing = self.share_choice.get()
        if sharing == EVERYONE:
            event.shared_with_everyone = True
        elif sharing == CHOSEN:
            if not self.picker.chosen:
                raise ValueError("Tick the people who see it under Sharing (or choose “Only me”).")
            event.shared_with.extend(sorted(self.picker.chosen))
        if self.event is not None:
            event.id, event.etag = self.event.id, self.event.etag
        return event

    def _read_end(self, recurrence: agenda_pb2.Recurrence, first: date) -> None:
        ends = self.ends.get()
        if ends == AFTER:
            count = self.fields["count"].get().strip()
            if not count.isdigit() or not 1 <= int(count) <= COUNT_MAX:
                raise ValueError(f"Ends after how many times? A whole number from 1 to {COUNT_MAX}.")
            recurrence.count = int(count)
        elif ends == ON_DATE:
            try:
                until = date.fromisoformat(self.fields["until"].get().strip())
            except ValueError:
                raise ValueError("The last date is YYYY-MM-DD, e.g. 2026-12-31.") from None
            if until < first:
                raise ValueError(f"The last date cannot be before the first occurrence ({first.isoformat()}).")
            recurrence.until_date.CopyFrom(from_date(until))

    def save(self) -> None:
        try:
            event = self._read_form()
        except ValueError as error:
            self.result.configure(text=str(error), bootstyle="danger")
            return

        def done(saved: agenda_pb2.AgendaEvent) -> None:
            self.edit(saved)
            self.result.configure(text=f"Saved “{saved.title}”.", bootstyle="success")
            self.load()

        self.controller.run(lambda: backend.save_event(self.session, event), done, self._refused("save", event.id))

    def _refused(self, doing: str, event_id: int) -> Callable[[Exception], None]:
        """What a refused change does: a stale etag reloads the event (and says so), the server's sentence about
        the input goes under the form, anything else to the window's error bar."""

        def failed(error: Exception) -> None:
            if isinstance(error, CallFailed) and error.code == grpc.StatusCode.ABORTED:
                self._reload_changed(event_id)
            elif isinstance(error, CallFailed):
                self.result.configure(text=f"Could not {doing}: {error}", bootstyle="danger")
            else:
                self.on_error(error, f"{doing} the event")

        return failed

    def _reload_changed(self, event_id: int) -> None:
        message = (
            "Someone else changed this event meanwhile: it has been reloaded as it is now. "
            "Make your change again if it is still needed."
        )

        def reloaded(event: agenda_pb2.AgendaEvent) -> None:
            self.edit(event)
            self.result.configure(text=message, bootstyle="warning")

        def gone(error: Exception) -> None:
            if isinstance(error, CallFailed) and error.code == grpc.StatusCode.NOT_FOUND:
                self.new_event()
                self.result.configure(text="Someone else deleted this event meanwhile.", bootstyle="warning")
            else:
                self.on_error(error, "reload the event")

        self.result.configure(text=message, bootstyle="warning")
        self.load()
        if self.event is not None and self.event.id == event_id:
            self.controller.run(lambda: backend.agenda_event(self.session, event_id), reloaded, gone)

    def delete(self) -> None:
        event = self.event
        if event is None or event.read_only:
            return
        if self.delete_button.cget("text") != "Confirm":
            self.delete_button.configure(text="Confirm")
            self._confirm = self.after(CONFIRM_MS, lambda: self.delete_button.configure(text="Delete"))
            return
        if self._confirm is not None:
            self.after_cancel(self._confirm)
            self._confirm = None

        def done(_result: object) -> None:
            self.new_event()
            self.result.configure(text=f"Deleted “{event.title}”.", bootstyle="success")
            self.load()

        self.controller.run(
            lambda: backend.delete_event(self.session, event.id, event.etag), done, self._refused("delete", event.id)
        )

    # --- one occurrence -------------------------------------------------------------------------------------

    def _menu_at(self, column: tk.Text, event: tk.Event) -> None:
        """A right click on an occurrence: open it, delete only it, or delete the whole series."""
        occurrence = self._occurrence_at(column, event)
        if occurrence is None or occurrence.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY:
            return
        self.fill_menu(occurrence)
        try:
            self.menu.tk_popup(event.x_root, event.y_root)
        finally:
            self.menu.grab_release()

    def fill_menu(self, occurrence: agenda_pb2.Occurrence) -> None:
        self.menu.delete(0, "end")
        self.menu.add_command(label="Open", command=lambda: self.select(occurrence))
        if occurrence.read_only:
            return
        self.menu.add_separator()
        if occurrence.recurring:
            day = occurrence_day(occurrence)
            self.menu.add_command(
                label=f"Delete this occurrence only ({day:%a %d %b})", command=lambda: self.skip_occurrence(occurrence)
            )
            self.menu.add_command(label="Delete the whole series…", command=lambda: self.delete_series(occurrence))
        else:
            self.menu.add_command(label="Delete…", command=lambda: self.delete_series(occurrence))

    def delete_series(self, occurrence: agenda_pb2.Occurrence) -> None:
        """Opens the event with Delete armed: the Confirm click deletes every occurrence."""
        self._delete_when_open = occurrence.event_id
        self.open_event(occurrence.event_id)

    def skip_occurrence(self, occurrence: agenda_pb2.Occurrence) -> None:
        """Deletes one occurrence of a repeating event: its date joins the event's exception dates."""
        day = occurrence_day(occurrence)

        def done(saved: agenda_pb2.AgendaEvent) -> None:
            self._exceptions_changed(saved)
            self.result.configure(
                text=f"Deleted the {day:%a %d %b} occurrence of “{saved.title}” "
                "(Restore, under Repeats, brings it back).",
                bootstyle="success",
            )

        self.controller.run(
            lambda: backend.skip_occurrence(self.session, occurrence.event_id, occurrence.etag, day, True),
            done,
            self._refused("delete the occurrence of", occurrence.event_id),
        )

    def restore_occurrence(self) -> None:
        """Takes the date chosen under Skipped out of the exception dates: that occurrence is back."""
        event = self.event
        chosen = self.skipped.selection()
        if event is None or event.read_only or not chosen:
            return
        day = date.fromisoformat(chosen[0])

        def done(saved: agenda_pb2.AgendaEvent) -> None:
            self._exceptions_changed(saved)
            self.result.configure(text=f"The {day:%a %d %b} occurrence is back.", bootstyle="success")

        self.controller.run(
            lambda: backend.skip_occurrence(self.session, event.id, event.etag, day, False),
            done,
            self._refused("restore the occurrence of", event.id),
        )

    def _exceptions_changed(self, saved: agenda_pb2.AgendaEvent) -> None:
        """The event's new etag and skipped dates; what else the form holds (perhaps being edited) stays."""
        if self.event is not None and self.event.id == saved.id:
            self.event = saved
            self.exceptions = sorted(to_date(d) for d in saved.recurrence.exception_dates)
            self._update_form_state()
        self.load()

    # --- export -----------------------------------------------------------------------------------------------

    def ask_export_path(self) -> str:
        """Where to save the export: the save dialog (the tests replace this method)."""
        return filedialog.asksaveasfilename(
            parent=self,
            title="Export the agenda",
            defaultextension=".ics",
            initialfile="workspace.ics",
            filetypes=[("iCalendar", "*.ics")],
        )

    def export(self) -> None:
        path = self.ask_export_path()
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> None:
        """Writes the agenda (``ExportCalendar``: yours and what is shared with you) to ``path``, in a worker."""

        def done(count: int) -> None:
            self.result.configure(text=f"Saved {count} event{'s' * (count != 1)} to {path}.", bootstyle="success")

        self.result.configure(text="Exporting the agenda…", bootstyle="secondary")
        self.controller.run(
            lambda: backend.export_calendar(self.session, path), done, self._failed("export the agenda")
        )
