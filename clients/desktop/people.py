"""Choosing people from the directory: a filtered list where a click ticks a person (the agenda's sharing)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Iterable

import ttkbootstrap as ttk
from workspace.v1 import users_pb2

#: At most this many people are listed in the picker at once (one Treeview row each): the filter finds the rest.
PEOPLE_SHOWN = 200


def person(user: users_pb2.User) -> str:
    return user.display_name or user.username


class PeoplePicker(ttk.Frame):
    """Chosen people: a filter above a list where a click (or Space) ticks or unticks a person.

    One Treeview of at most ``PEOPLE_SHOWN`` rows whatever the size of the directory; the people chosen stay
    chosen while the filter hides them, and the line under the list names them all.
    """

    def __init__(self, parent: tk.Misc, on_change: Callable[[], None]) -> None:
        super().__init__(parent)
        self.on_change = on_change
        self.people: dict[int, users_pb2.User] = {}
        self.chosen: set[int] = set()
        self.me = 0
        self.enabled = True
        self.matches = 0
        ttk.Label(self, text="Find").grid(row=0, column=0, sticky="w", padx=(0, 8))
        self.query = tk.StringVar()
        self.filter = ttk.Entry(self, textvariable=self.query, width=14)
        self.filter.grid(row=0, column=1, columnspan=2, sticky="ew", pady=(0, 4))
        self.list = ttk.Treeview(self, show="tree", selectmode="browse", height=7)
        self.list.column("#0", width=200)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.list.yview)
        self.list.configure(yscrollcommand=scroll.set)
        self.list.grid(row=1, column=0, columnspan=2, sticky="nsew")
        scroll.grid(row=1, column=2, sticky="ns")
        self.columnconfigure(1, weight=1)
        self.summary = ttk.Label(self, text="", bootstyle="secondary", wraplength=230, justify="left")
        self.summary.grid(row=2, column=0, columnspan=3, sticky="w", pady=(4, 0))
        self.query.trace_add("write", lambda *_: self.fill())
        self.list.bind("<Button-1>", self._clicked)
        self.list.bind("<space>", self._space)

    def name(self, user_id: int) -> str:
        if user_id == self.me:
            return "you"
        user = self.people.get(user_id)
        return person(user) if user is not None else f"#{user_id}"

    def set_people(self, users: list[users_pb2.User], me: int) -> None:
        self.people = {u.id: u for u in users}
        self.me = me
        self.fill()

    def choose(self, user_ids: Iterable[int]) -> None:
        """Ticks these people (and no one else), with the filter emptied."""
        self.chosen = set(user_ids)
        self.query.set("")  # which fills the list again

    def fill(self) -> None:
        """The people the filter matches (oneself excluded: the owner always sees the event); read-only, the
        people chosen."""
        if self.enabled:
            words = self.query.get().strip().lower()
            found = (u for u in self.people.values() if not words or words in f"{u.display_name} {u.username}".lower())
            ids = [u.id for u in found if u.id != self.me]
        else:
            ids = sorted(self.chosen, key=lambda i: self.name(i).lower())
        self.matches = len(ids)
        self.list.delete(*self.list.get_children())
        for user_id in ids[:PEOPLE_SHOWN]:
            self.list.insert("", "end", iid=str(user_id), text=self._row(user_id))
        self._summarise()

    def _row(self, user_id: int) -> str:
        name = self.name(user_id)
        return f"{'☑' if user_id in self.chosen else '☐'}  {name[:1].upper()}{name[1:]}"

    def _summarise(self) -> None:
        names = sorted((self.name(i) for i in self.chosen), key=str.lower)
        text = f"{len(names)} chosen: " + ", ".join(names[:6]) if names else "Nobody chosen yet: tick people above."
        if not self.enabled:
            text = "Shared with " + (", ".join(names[:6]) or "chosen people")
        if len(names) > 6:
            text += f" and {len(names) - 6} more"
        if self.matches > PEOPLE_SHOWN:
            text = f"Showing {PEOPLE_SHOWN} of {self.matches}: type a name to narrow. " + text
        self.summary.configure(text=text)

    def toggle(self, user_id: int) -> None:
        if not self.enabled:
            return
        self.chosen ^= {user_id}
        if self.list.exists(str(user_id)):
            self.list.item(str(user_id), text=self._row(user_id))
        self._summarise()
        self.on_change()

    def _clicked(self, event: tk.Event) -> None:
        row = self.list.identify_row(event.y)
        if row:
            self.toggle(int(row))

    def _space(self, _event: tk.Event) -> None:
        row = self.list.focus()
        if row:
            self.toggle(int(row))

    def set_enabled(self, enabled: bool) -> None:
        if enabled != self.enabled:
            self.enabled = enabled
            self.fill()
        self.filter.configure(state="normal" if enabled else "disabled")
        self.list.state(["!disabled"] if enabled else ["disabled"])
