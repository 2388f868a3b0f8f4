"""Agenda: a week (or one day) of ``ListEvents`` occurrences, holidays read-only; create, edit, delete events.

Each day is one ``Text`` column (seven at most, whatever the number of events); an occurrence is a tagged run
of text, and clicking it opens the event in the form beside the week.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import ttkbootstrap as ttk
from google.type import date_pb2
from workspace.v1 import agenda_pb2
from workspace_client import Session
from workspace_client.tk_bridge import Controller

from . import backend

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
CONFIRM_MS = 4000


def to_date(value: date_pb2.Date) -> date:
    return date(value.year, value.month, value.day)


def from_date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


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
        self.loads = 0
        self._confirm: str | None = None
        self._build()
        self.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is self and self._confirm is not None:
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
        self.mode_choice = tk.StringVar(value="week")
        self.mode_buttons: dict[str, ttk.Radiobutton] = {}
        for label, value in (("Month", "month"), ("Week", "week"), ("Day", "day")):
            self.mode_buttons[value] = ttk.Radiobutton(
                nav,
                text=label,
                value=value,
                variable=self.mode_choice,
                command=self._mode_changed,
                bootstyle="toolbutton",
            )
            self.mode_buttons[value].pack(side="right")

        self.range_label = ttk.Label(left, text="", font=("TkDefaultFont", 13, "bold"))
        self.range_label.pack(anchor="w", pady=(0, 6))
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
        self.restyle()

    def _cell(self, parent: tk.Misc, width: int, height: int = 10) -> tk.Text:
        """One day: a read-only Text whose occurrences are tagged runs (``o<index>``) that can be clicked."""
        cell = tk.Text(
            parent,
            width=width,
            height=height,
            wrap="word",
            state="disabled",
            cursor="arrow",
            relief="flat",
            highlightthickness=1,
            highlightbackground="#ced4da",
            highlightcolor="#ced4da",
            padx=4,
            pady=4,
            font=("TkDefaultFont", 9),
        )
        cell.tag_configure("time", font=("TkDefaultFont", 8, "bold"))
        cell.tag_configure("holiday", font=("TkDefaultFont", 9, "italic"), foreground="#868e96")
        cell.tag_configure("where", font=("TkDefaultFont", 8), foreground="#868e96")
        cell.tag_configure("empty", foreground="#adb5bd", justify="center")
        cell.tag_configure("daynum", font=("TkDefaultFont", 9, "bold"), justify="right")
        cell.tag_configure("other-month", foreground="#adb5bd")
        cell.tag_configure("today", foreground="#4582ec")
        cell.bind("<Button-1>", lambda e, c=cell: self._clicked(c, e))
        return cell

    def restyle(self) -> None:
        """The day cells in the theme's colours (Text widgets are not themed by ttk)."""
        style = ttk.Style()
        background = style.lookup("TEntry", "fieldbackground") or "white"
        foreground = style.lookup("TLabel", "foreground") or "black"
        for cell in (*self.columns, *self.month_cells):
            cell.configure(background=background, foreground=foreground)

    def _build_form(self, form: ttk.Labelframe) -> None:
        self.fields: dict[str, ttk.Entry] = {}

        def field(row: int, label: str, key: str, width: int = 14) -> ttk.Entry:
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
            entry = ttk.Entry(form, width=width)
            entry.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
            form.columnconfigure(2, weight=1)
            self.fields[key] = entry
            return entry

        field(0, "Title", "title")
        field(1, "Date", "date").insert(0, self.day.isoformat())
        self.all_day = tk.BooleanVar(value=False)
        self.all_day_box = ttk.Checkbutton(form, text="All day", variable=self.all_day, command=self._all_day_changed)
        self.all_day_box.grid(row=2, column=1, sticky="w", pady=2)
        field(3, "From", "start").insert(0, "09:00")
        field(4, "To", "end").insert(0, "10:00")
        self.end_label = form.grid_slaves(row=4, column=0)[0]
        field(5, "Location", "location")
        ttk.Label(form, text="Colour").grid(row=6, column=0, sticky="w", padx=(0, 8), pady=2)
        self.colour = ttk.Combobox(form, values=list(COLOURS), state="readonly", width=12)
        self.colour.set("Blue")
        self.colour.grid(row=6, column=1, columnspan=2, sticky="ew", pady=2)
        ttk.Label(form, text="Repeats").grid(row=7, column=0, sticky="w", padx=(0, 8), pady=2)
        self.repeat = ttk.Combobox(form, values=list(REPEATS), state="readonly", width=12)
        self.repeat.set("Does not repeat")
        self.repeat.grid(row=7, column=1, columnspan=2, sticky="ew", pady=2)
        ttk.Label(form, text="Times").grid(row=8, column=0, sticky="w", padx=(0, 8), pady=2)
        self.fields["count"] = ttk.Entry(form, width=6)
        self.fields["count"].grid(row=8, column=1, sticky="w", pady=2)
        ttk.Label(form, text="empty: no end", bootstyle="secondary").grid(row=8, column=2, sticky="w", padx=(6, 0))
        self.share = tk.BooleanVar(value=False)
        ttk.Checkbutton(form, text="Everyone sees it", variable=self.share).grid(row=10, column=1, sticky="w")
        buttons = ttk.Frame(form)
        buttons.grid(row=11, column=0, columnspan=3, sticky="ew", pady=(10, 0))
        self.save_button = ttk.Button(buttons, text="Create", command=self.save, bootstyle="primary", width=9)
        self.save_button.pack(side="right")
        self.delete_button = ttk.Button(buttons, text="Delete", command=self.delete, bootstyle="danger-link")
        self.delete_button.pack(side="right", padx=4)
        self.new_button = ttk.Button(buttons, text="New", command=self.new_event, bootstyle="secondary-link")
        self.new_button.pack(side="left")
        self.result = ttk.Label(form, text="", bootstyle="secondary", wraplength=240, justify="left")
        self.result.grid(row=12, column=0, columnspan=3, sticky="w", pady=(8, 0))
        ttk.Label(form, text=f"Times are in {self.zone_name}.", bootstyle="secondary").grid(
            row=13, column=0, columnspan=3, sticky="w", pady=(8, 0)
        )
        self._update_form_state()

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
        if self.mode == "month":
            month = self.day.year * 12 + self.day.month - 1 + step
            self.day = date(month // 12, month % 12 + 1, 1)
        else:
            self.day += timedelta(days=step * (1 if self.mode == "day" else 7))
        self.load()

    def cells(self) -> list[tk.Text]:
        """The Text of each day shown, in order."""
        return self.month_cells[: len(self.days())] if self.mode == "month" else self.columns[: len(self.days())]

    def today(self) -> None:
        self.day = datetime.now(self.zone).date()
        self.load()

    def _mode_changed(self) -> None:
        self.mode = self.mode_choice.get()
        self.load()

    def load(self) -> None:
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

    def _clicked(self, column: tk.Text, event: tk.Event) -> None:
        index = column.index(f"@{event.x},{event.y}")
        for tag in column.tag_names(index):
            if tag.startswith("o") and tag[1:].isdigit():
                self.select(self.occurrences[int(tag[1:])])
                return

    def select(self, occurrence: agenda_pb2.Occurrence) -> None:
        """Opens an occurrence's event in the form (a holiday only says what it is)."""
        if occurrence.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY:
            self.result.configure(text=f"{occurrence.title}: a public holiday.", bootstyle="secondary")
            return
        self.controller.run(
            lambda: backend.agenda_event(self.session, occurrence.event_id), self.edit, self._failed("open the event")
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
        frequency = event.recurrence.frequency if event.HasField("recurrence") else 0
        self.repeat.set(next(k for k, v in REPEATS.items() if v == frequency))
        self._set("count", str(event.recurrence.count) if event.recurrence.count else "")
        self.share.set(event.shared_with_everyone)
        self.result.configure(text="Only its owner can change it." if event.read_only else "", bootstyle="secondary")
        self._update_form_state()

    def _set(self, key: str, value: str) -> None:
        self.fields[key].configure(state="normal")  # the callers set the states again afterwards
        self.fields[key].delete(0, "end")
        self.fields[key].insert(0, value)

    def new_event(self) -> None:
        self.event = None
        self.form.configure(text="New event")
        for key in ("title", "location", "count"):
            self._set(key, "")
        self._set("date", self.day.isoformat())
        self.all_day.set(False)
        self._set("start", "09:00")
        self._set("end", "10:00")
        self.repeat.set("Does not repeat")
        self.colour.set("Blue")
        self.share.set(False)
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

    def _update_form_state(self) -> None:
        self.fields["start"].configure(state="disabled" if self.all_day.get() else "normal")
        self.end_label.configure(text="Last day" if self.all_day.get() else "To")
        editable = self.event is None or not self.event.read_only
        self.save_button.configure(text="Create" if self.event is None else "Save")
        self.save_button.configure(state="normal" if editable else "disabled")
        deletable = self.event is not None and not self.event.read_only
        self.delete_button.configure(state="normal" if deletable else "disabled", text="Delete")

    def _read_form(self) -> agenda_pb2.AgendaEvent:
        """The event the form describes; ``ValueError`` with a sentence when a field cannot be read."""
        event = agenda_pb2.AgendaEvent(
            title=self.fields["title"].get().strip(),
            location=self.fields["location"].get().strip(),
            color=COLOURS[self.colour.get()],
            time_zone=self.zone_name,
            shared_with_everyone=self.share.get(),
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
            count = self.fields["count"].get().strip()
            if count:
                if not count.isdigit():
                    raise ValueError("Times is a number of occurrences, or empty.")
                event.recurrence.count = int(count)
        if self.event is not None:
            event.id, event.etag = self.event.id, self.event.etag
        return event

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

        def failed(error: Exception) -> None:
            self.result.configure(text=str(error), bootstyle="danger")

        self.controller.run(lambda: backend.save_event(self.session, event), done, failed)

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
            lambda: backend.delete_event(self.session, event.id, event.etag), done, self._failed("delete the event")
        )
