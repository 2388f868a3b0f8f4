"""The live activity feed: who did what, newest first, with filters and a pause button."""

from __future__ import annotations

import tkinter as tk
from collections import deque

import ttkbootstrap as ttk
from workspace.v1 import activity_pb2

from .figures import local_time
from .tables import Table

#: Entries kept in memory (and shown at most).
KEEP = 2000
ALL = "(every action)"


class ActivityFeed(ttk.Frame):
    def __init__(self, parent: tk.Misc) -> None:
        super().__init__(parent, padding=6)
        bar = ttk.Frame(self)
        bar.pack(fill="x", pady=(0, 6))
        ttk.Label(bar, text="Person").pack(side="left")
        self.person = tk.StringVar()
        self.person_entry = ttk.Entry(bar, textvariable=self.person, width=18)
        self.person_entry.pack(side="left", padx=(4, 12))
        ttk.Label(bar, text="Action").pack(side="left")
        self.action = tk.StringVar(value=ALL)
        self.action_box = ttk.Combobox(bar, textvariable=self.action, values=[ALL], width=24, state="readonly")
        self.action_box.pack(side="left", padx=(4, 12))
        self.pause_button = ttk.Button(bar, text="Pause", width=9, command=self.toggle_pause, bootstyle="secondary")
        self.pause_button.pack(side="left")
        self.note = ttk.Label(bar, text="", bootstyle="secondary")
        self.note.pack(side="left", padx=12)
        self.table = Table(
            self,
            (
                ("time", "Time", 160, False),
                ("person", "Person", 130, False),
                ("action", "Action", 170, False),
                ("resource", "On", 150, False),
                ("detail", "Detail", 300, True),
            ),
            height=14,
        )
        self.table.pack(fill="both", expand=True)
        self.entries: deque[activity_pb2.ActivityEntry] = deque(maxlen=KEEP)
        self.paused = False
        self.held = 0
        self.last_id = 0
        self.actions: set[str] = set()
        self.person.trace_add("write", lambda *_: self._rebuild())
        self.action.trace_add("write", lambda *_: self._rebuild())

    # --- fed by the controller ------------------------------------------------------------------------

    def load(self, newest_first: list[activity_pb2.ActivityEntry]) -> None:
        for entry in reversed(newest_first):
            self._keep(entry)
        self._rebuild()

    def add(self, entry: activity_pb2.ActivityEntry) -> None:
        if not self._keep(entry):
            return
        if self.paused:
            self.held += 1
            self.note.configure(text=f"paused · {self.held} new")
        elif self._matches(entry):
            self.table.insert_top(str(entry.id), self._values(entry))
            self.table.trim(KEEP)

    def reset(self) -> None:
        """The server's log starts afresh (``RESYNC_REQUIRED``): forget what we had, follow from its start."""
        self.entries.clear()
        self.last_id = 0
        self.held = 0
        self._rebuild()

    # --- the person's controls ------------------------------------------------------------------------

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.pause_button.configure(text="Resume" if self.paused else "Pause")
        self.held = 0
        self.note.configure(text="paused" if self.paused else "")
        if not self.paused:
            self._rebuild()

    def _keep(self, entry: activity_pb2.ActivityEntry) -> bool:
        if entry.id <= self.last_id:
            return False
        self.last_id = entry.id
        self.entries.append(entry)
        if entry.action not in self.actions:
            self.actions.add(entry.action)
            self.action_box.configure(values=[ALL, *sorted(self.actions)])
        return True

    def _matches(self, entry: activity_pb2.ActivityEntry) -> bool:
        person = self.person.get().strip().lower()
        action = self.action.get()
        if person and person not in entry.actor_username.lower():
            return False
        return action in ("", ALL) or entry.action == action

    def _rebuild(self) -> None:
        if self.paused:
            return
        rows = [(str(e.id), self._values(e)) for e in reversed(self.entries) if self._matches(e)]
        self.table.replace(rows)

    @staticmethod
    def _values(entry: activity_pb2.ActivityEntry) -> tuple[str, ...]:
        resource = f"{entry.resource_type} {entry.resource_id}".strip()
        return (
            local_time(entry.create_time, short=True),
            entry.actor_username or "—",
            entry.action,
            resource,
            entry.detail,
        )
