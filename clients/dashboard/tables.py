"""A scrolled ``ttk.Treeview`` with named columns: the lists of the dashboard are all built on it."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Sequence

import ttkbootstrap as ttk


class Table(ttk.Frame):
    """``columns``: (key, heading, width, stretch). Rows are identified by a string id (``iid``)."""

    def __init__(self, parent: tk.Misc, columns: Sequence[tuple[str, str, int, bool]], height: int = 10) -> None:
        super().__init__(parent)
        self.keys = [c[0] for c in columns]
        self.tree = ttk.Treeview(self, columns=self.keys, show="headings", height=height, selectmode="browse")
        for key, heading, width, stretch in columns:
            self.tree.heading(key, text=heading, anchor="w")
            self.tree.column(key, width=width, minwidth=40, stretch=stretch, anchor="w")
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)

    def replace(self, rows: Sequence[tuple[str, Sequence[object]]]) -> None:
        """Show exactly ``rows`` (iid, values), keeping the selection if its row is still there."""
        selected = self.selected()
        self.tree.delete(*self.tree.get_children())
        for iid, values in rows:
            self.tree.insert("", "end", iid=iid, values=list(values))
        if selected and self.tree.exists(selected):
            self.tree.selection_set(selected)

    def insert_top(self, iid: str, values: Sequence[object]) -> None:
        self.tree.insert("", 0, iid=iid, values=list(values))

    def trim(self, limit: int) -> None:
        children = self.tree.get_children()
        if len(children) > limit:
            self.tree.delete(*children[limit:])

    def selected(self) -> str | None:
        selection = self.tree.selection()
        return selection[0] if selection else None

    def select(self, iid: str) -> None:
        self.tree.selection_set(iid)
        self.tree.see(iid)
        self.tree.event_generate("<<TreeviewSelect>>")

    def rows(self) -> list[dict[str, str]]:
        """What the table shows, top to bottom, as column key -> text."""
        return [
            dict(zip(self.keys, map(str, self.tree.item(iid, "values")), strict=False))
            for iid in self.tree.get_children()
        ]
