"""Issues that the desktop apps reported: list them, read one, mark it resolved."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import monitoring_pb2

from .figures import local_time
from .tables import Table

KINDS = {monitoring_pb2.CLIENT_ISSUE_KIND_ERROR: "error", monitoring_pb2.CLIENT_ISSUE_KIND_FEEDBACK: "feedback"}


class IssuesView(ttk.Frame):
    """``load(show_resolved)`` and ``resolve(issue_id)`` are the window's; they answer with ``show``."""

    def __init__(self, parent: tk.Misc, load: Callable[[bool], None], resolve: Callable[[int], None]) -> None:
        super().__init__(parent, padding=6)
        self._load, self._resolve = load, resolve
        bar = ttk.Frame(self)
        bar.pack(fill="x", pady=(0, 6))
        ttk.Button(bar, text="Refresh", command=self.refresh, bootstyle="secondary").pack(side="left")
        self.show_resolved = tk.BooleanVar(value=False)
        ttk.Checkbutton(bar, text="Show resolved", variable=self.show_resolved, command=self.refresh).pack(
            side="left", padx=12
        )
        self.resolve_button = ttk.Button(
            bar, text="Mark resolved", command=self.resolve_selected, bootstyle="success", state="disabled"
        )
        self.resolve_button.pack(side="left")
        self.note = ttk.Label(bar, text="", bootstyle="secondary")
        self.note.pack(side="left", padx=12)
        panes = ttk.Panedwindow(self, orient="vertical")
        panes.pack(fill="both", expand=True)
        self.table = Table(
            panes,
            (
                ("id", "#", 50, False),
                ("kind", "Kind", 80, False),
                ("time", "Reported", 170, False),
                ("reporter", "By", 130, False),
                ("client", "App", 150, False),
                ("message", "Message", 300, True),
                ("status", "Status", 140, False),
            ),
            height=8,
        )
        panes.add(self.table, weight=3)
        self.text = tk.Text(panes, height=7, wrap="word", relief="flat", padx=8, pady=6)
        self.text.configure(state="disabled")
        panes.add(self.text, weight=2)
        self.table.tree.bind("<<TreeviewSelect>>", lambda _e: self._show_selected())
        self.issues: dict[str, monitoring_pb2.ClientIssue] = {}
        self.usernames: dict[int, str] = {}

    def refresh(self) -> None:
        self._load(self.show_resolved.get())

    def show(self, issues: list[monitoring_pb2.ClientIssue], usernames: dict[int, str]) -> None:
        self.usernames.update(usernames)
        self.issues = {str(i.id): i for i in issues}
        self.table.replace([(str(i.id), self._values(i)) for i in issues])
        open_count = sum(1 for i in issues if not i.resolver_id)
        self.note.configure(text=f"{open_count} open", bootstyle="secondary")
        self._show_selected()

    def resolve_selected(self) -> None:
        selected = self.table.selected()
        if selected:
            self.resolve_button.configure(state="disabled")
            self._resolve(int(selected))

    def failed(self, error: Exception) -> None:
        self.note.configure(text=str(error), bootstyle="danger")

    def _values(self, issue: monitoring_pb2.ClientIssue) -> tuple[str, ...]:
        first_line = issue.message.splitlines()[0] if issue.message else ""
        status = f"resolved {local_time(issue.resolve_time)[11:16]}" if issue.resolver_id else "open"
        return (
            str(issue.id),
            KINDS.get(issue.kind, "?"),
            local_time(issue.create_time),
            self.usernames.get(issue.reporter_id, f"#{issue.reporter_id}"),
            issue.client_version,
            first_line,
            status,
        )

    def _show_selected(self) -> None:
        issue = self.issues.get(self.table.selected() or "")
        self.resolve_button.configure(state="normal" if issue is not None and not issue.resolver_id else "disabled")
        text = ""
        if issue is not None:
            text = (
                f"{KINDS.get(issue.kind, '?')} #{issue.id} from "
                f"{self.usernames.get(issue.reporter_id, issue.reporter_id)}, {local_time(issue.create_time)}\n"
                f"App: {issue.client_version or '—'}    Platform: {issue.platform or '—'}\n\n"
                f"{issue.message}\n"
            )
            if issue.context:
                text += f"\nContext:\n{issue.context}\n"
            if issue.resolver_id:
                resolver = self.usernames.get(issue.resolver_id, issue.resolver_id)
                text += f"\nResolved by {resolver}, {local_time(issue.resolve_time)}\n"
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.insert("1.0", text)
        self.text.configure(state="disabled")
