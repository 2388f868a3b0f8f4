"""Who is connected: everyone online or away, with their state and since when."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import presence_pb2

from .backend import PersonPresence
from .figures import local_time
from .tables import Table

STATES = {
    presence_pb2.PRESENCE_STATE_ONLINE: "online",
    presence_pb2.PRESENCE_STATE_AWAY: "away",
    presence_pb2.PRESENCE_STATE_OFFLINE: "offline",
}


class PeopleView(ttk.Frame):
    """``load(include_offline)`` is called by the window; it calls ``show`` with the answer."""

    def __init__(self, parent: tk.Misc, load: Callable[[bool], None]) -> None:
        super().__init__(parent, padding=6)
        bar = ttk.Frame(self)
        bar.pack(fill="x", pady=(0, 6))
        self.include_offline = tk.BooleanVar(value=False)
        ttk.Button(bar, text="Refresh", command=self.refresh, bootstyle="secondary").pack(side="left")
        ttk.Checkbutton(bar, text="Show offline people", variable=self.include_offline, command=self.refresh).pack(
            side="left", padx=12
        )
        self.note = ttk.Label(bar, text="", bootstyle="secondary")
        self.note.pack(side="left")
        self.table = Table(
            self,
            (
                ("name", "Name", 180, True),
                ("username", "Username", 150, False),
                ("state", "Presence", 90, False),
                ("since", "Since", 170, False),
                ("status", "Status", 220, True),
            ),
        )
        self.table.pack(fill="both", expand=True)
        self._load = load

    def refresh(self) -> None:
        self._load(self.include_offline.get())

    def show(self, rows: list[PersonPresence]) -> None:
        self.table.replace(
            [
                (
                    str(row.user.id),
                    (
                        row.user.display_name or row.user.username,
                        row.user.username,
                        STATES.get(row.presence.state, "?"),
                        local_time(row.presence.change_time),
                        row.presence.status_text,
                    ),
                )
                for row in rows
            ]
        )
        online = sum(1 for r in rows if r.presence.state != presence_pb2.PRESENCE_STATE_OFFLINE)
        self.note.configure(text=f"{online} connected", bootstyle="secondary")

    def failed(self, error: Exception) -> None:
        self.note.configure(text=str(error), bootstyle="danger")
