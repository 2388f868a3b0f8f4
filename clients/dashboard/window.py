"""The main window after login: cards on top, tabs (charts, replicas, activity, people, issues, accounts),
and the status bar that always says whether the figures are live."""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable
from datetime import datetime

import ttkbootstrap as ttk
from workspace.v1 import activity_pb2, monitoring_pb2
from workspace_client import Session, StateChange, StreamState, activity_stream, stats_stream

from . import backend
from .accounts import AccountsView
from .activity import ActivityFeed
from .cards import CardsView
from .charts import ChartsView, History, stats_row
from .config import Thresholds
from .controller import Controller
from .figures import cards, seconds, short_duration
from .issues import IssuesView
from .people import PeopleView
from .settings_dialog import ThresholdsDialog
from .tables import Table

#: Lists that are on screen are read again this often, seconds.
LIST_REFRESH_SECONDS = 10
STATE_STYLE = {
    StreamState.CONNECTING: "info",
    StreamState.CONNECTED: "success",
    StreamState.RECONNECTING: "warning",
    StreamState.STOPPED: "danger",
}


class StatusBar(ttk.Frame):
    def __init__(self, parent: tk.Misc, who: str, on_settings: Callable[[], None], on_logout: Callable[[], None]):
        super().__init__(parent, padding=(8, 3))
        ttk.Separator(parent).pack(side="bottom", fill="x")
        self.state = ttk.Label(self, text="● Connecting…", bootstyle="info", font=("TkDefaultFont", 9, "bold"))
        self.state.pack(side="left")
        self.detail = ttk.Label(self, text="", bootstyle="secondary")
        self.detail.pack(side="left", padx=10)
        ttk.Button(self, text="Log out", command=on_logout, bootstyle="secondary-link").pack(side="right")
        ttk.Button(self, text="Thresholds…", command=on_settings, bootstyle="secondary-link").pack(side="right")
        self.feed = ttk.Label(self, text="", bootstyle="secondary")
        self.feed.pack(side="right", padx=10)
        ttk.Label(self, text=who, bootstyle="secondary").pack(side="right", padx=10)
        self.level = StreamState.CONNECTING

    def show(self, state: StreamState, text: str, detail: str) -> None:
        if state != self.level:
            self.level = state
            self.state.configure(bootstyle=STATE_STYLE[state])
        if self.state.cget("text") != f"● {text}":
            self.state.configure(text=f"● {text}")
        if self.detail.cget("text") != detail:
            self.detail.configure(text=detail)


class MainWindow(ttk.Frame):
    def __init__(
        self,
        parent: tk.Misc,
        controller: Controller,
        session: Session,
        thresholds: Thresholds,
        on_logout: Callable[[], None],
        stats_interval: float | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller, self.session, self.thresholds = controller, session, thresholds
        self.on_logout = on_logout
        self.stats_interval = stats_interval
        who = f"{session.user.username if session.user else '?'} @ {session.address}"
        self.status = StatusBar(self, who, self.open_settings, on_logout)
        self.status.pack(side="bottom", fill="x")
        self.cards = CardsView(self)
        self.cards.pack(side="top", fill="x")
        self.notebook = ttk.Notebook(self)
        self.notebook.pack(fill="both", expand=True, padx=6, pady=(0, 4))
        self.history = History()
        self.charts = ChartsView(self.notebook, self.history, visible=lambda: self._showing(self.charts))
        self.replicas = Table(
            self.notebook,
            (
                ("replica", "Replica", 140, True),
                ("health", "Health", 110, False),
                ("version", "Version", 80, False),
                ("uptime", "Uptime", 100, False),
                ("cpu", "CPU %", 70, False),
                ("memory", "Memory MB", 90, False),
                ("threads", "Threads", 70, False),
                ("streams", "Streams", 70, False),
                ("people", "People", 70, False),
                ("database", "Database", 110, False),
                ("latency", "DB latency", 90, False),
                ("pool", "Pool in use", 90, False),
            ),
        )
        self.activity = ActivityFeed(self.notebook)
        self.people = PeopleView(self.notebook, self._load_people)
        self.issues = IssuesView(self.notebook, self._load_issues, self._resolve_issue)
        self.accounts = AccountsView(
            self.notebook, self._load_accounts, self._create_account, self._set_disabled, self._reset_password
        )
        for view, title in (
            (self.charts, "Charts"),
            (self.replicas, "Replicas"),
            (self.activity, "Activity"),
            (self.people, "People"),
            (self.issues, "Client issues"),
            (self.accounts, "Accounts"),
        ):
            self.notebook.add(view, text=f"  {title}  ")
        self.notebook.bind("<<NotebookTabChanged>>", lambda _e: self._tab_changed())
        self.stats_state = StreamState.CONNECTING
        self.last_stats: monitoring_pb2.Stats | None = None
        self.last_tick = ""
        self.ticks = 0
        self.usernames: dict[int, str] = {}
        self.streams: list = []
        self._seconds = 0
        self._clock = self.after(1000, self._every_second)
        #: After ``stop()``: late results from workers and streams are dropped, the widgets are gone.
        self.closed = False

    def _while_open(self, callback: Callable[..., None]) -> Callable[..., None]:
        return lambda *args: None if self.closed else callback(*args)

    # --- streams --------------------------------------------------------------------------------------

    def start(self) -> None:
        post, alive = self.controller.post, self._while_open
        stats = stats_stream(
            self.session,
            self.stats_interval,
            # The time of arrival, taken in the stream's thread: a busy window must not bunch ticks together.
            on_item=lambda reply: post(alive(self.on_stats), reply.stats, time.monotonic()),
            on_state=lambda change: post(alive(self.on_stats_state), change),
        )
        self.streams.append(stats.start())
        self.controller.run(
            lambda: backend.recent_activity(self.session), alive(self._follow_activity), alive(self._activity_failed)
        )

    def _follow_activity(self, newest_first: list[activity_pb2.ActivityEntry]) -> None:
        self.activity.load(newest_first)
        post, alive = self.controller.post, self._while_open
        feed = activity_stream(
            self.session,
            after_id=self.activity.last_id,
            on_item=lambda reply: post(alive(self.on_activity), reply.entry),
            on_state=lambda change: post(alive(self.on_activity_state), change),
            # The server no longer knows our position (a new database): start the feed afresh.
            on_resync=lambda: post(alive(self.activity.reset)),
        )
        self.streams.append(feed.start())

    def _activity_failed(self, error: Exception) -> None:
        self.status.feed.configure(text=f"feed: {error}")
        self._follow_activity([])

    def stop(self) -> None:
        self.closed = True
        self.after_cancel(self._clock)
        for stream in self.streams:
            self.controller.run(stream.stop)
        self.streams.clear()

    def on_stats(self, stats: monitoring_pb2.Stats, received: float | None = None) -> None:
        self.ticks += 1
        self.last_stats = stats
        self.last_tick = datetime.now().strftime("%H:%M:%S")
        self.cards.show(cards(stats, self.thresholds))
        self.history.add(time.monotonic() if received is None else received, stats_row(stats))
        self.charts.render()
        if self._showing(self.replicas):
            self._show_replicas()
        self._show_state()

    def on_stats_state(self, change: StateChange) -> None:
        self.stats_state = change.state
        self.stats_change = change
        if change.state in (StreamState.RECONNECTING, StreamState.STOPPED):
            self.cards.stale()
            self.history.gap(time.monotonic())
            self.charts.render()
        self._show_state()
        if change.state == StreamState.STOPPED and change.error:
            self.status.show(StreamState.STOPPED, "Signed out", change.error)

    def on_activity(self, entry: activity_pb2.ActivityEntry) -> None:
        self.activity.add(entry)
        if entry.resource_type == "client_issue" and self._showing(self.issues):
            self.issues.refresh()

    def on_activity_state(self, change: StateChange) -> None:
        text = {
            StreamState.CONNECTED: "feed live",
            StreamState.RECONNECTING: "feed reconnecting",
            StreamState.STOPPED: "feed stopped",
        }.get(change.state, "feed connecting")
        self.status.feed.configure(text=text)

    def _show_state(self) -> None:
        state = self.stats_state
        if state == StreamState.CONNECTED:
            self.status.show(state, "Live", f"updated {self.last_tick}")
        elif state == StreamState.RECONNECTING:
            change = self.stats_change
            since = f"last update {self.last_tick}" if self.last_tick else "no figures yet"
            self.status.show(state, f"Connection lost — reconnecting (attempt {change.attempt})", since)
        elif state == StreamState.CONNECTING:
            self.status.show(state, "Connecting…", "")
        else:
            self.status.show(state, "Stopped", "")

    def _every_second(self) -> None:
        """Time goes on while the figures do not: the charts show the outage as a gap that grows."""
        self._seconds += 1
        if self.stats_state != StreamState.CONNECTED and self.history.times:
            self.history.add(time.monotonic(), {})
            self.charts.render()
        if self._seconds % LIST_REFRESH_SECONDS == 0:
            if self._showing(self.people):
                self.people.refresh()
            if self._showing(self.issues):
                self.issues.refresh()
        self._clock = self.after(1000, self._every_second)

    # --- tabs -----------------------------------------------------------------------------------------

    def _showing(self, view: tk.Misc) -> bool:
        return self.notebook.select() == str(view) and self.winfo_viewable()

    def _tab_changed(self) -> None:
        if self._showing(self.charts):
            self.charts.invalidate()
            self.charts.render()
        elif self._showing(self.replicas):
            self._show_replicas()
        elif self._showing(self.people):
            self.people.refresh()
        elif self._showing(self.issues):
            self.issues.refresh()
        elif self._showing(self.accounts):
            self.accounts.refresh()

    def _show_replicas(self) -> None:
        if self.last_stats is None:
            return
        rows = []
        for r in self.last_stats.replicas:
            streams = sum(c.count for c in r.open_streams)
            health = "ok" if r.database.reachable else "database down"
            rows.append(
                (
                    r.instance_id,
                    (
                        r.replica_id,
                        health,
                        r.version,
                        short_duration(seconds(r.uptime)),
                        f"{r.process.cpu_percent:.1f}",
                        f"{r.process.memory_rss_bytes / 1e6:.0f}",
                        r.process.threads,
                        streams,
                        r.connected_people,
                        f"{r.database.kind} {'up' if r.database.reachable else 'DOWN'}",
                        f"{seconds(r.database.query_latency) * 1000:.1f} ms",
                        f"{r.database.pool_in_use}/{r.database.pool_size}",
                    ),
                )
            )
        self.replicas.replace(rows)

    # --- the lists' calls -----------------------------------------------------------------------------

    def _load_people(self, include_offline: bool) -> None:
        self.controller.run(
            lambda: backend.people(self.session, include_offline),
            self._while_open(self.people.show),
            self._while_open(self.people.failed),
        )

    def _load_issues(self, show_resolved: bool) -> None:
        def work():  # type: ignore[no-untyped-def]
            found = backend.issues(self.session, show_resolved)
            unknown = {i.reporter_id for i in found} | {i.resolver_id for i in found if i.resolver_id}
            if unknown - self.usernames.keys():
                self.usernames.update({u.id: u.username for u in backend.all_users(self.session)})
            return found

        self.controller.run(
            work,
            self._while_open(lambda found: self.issues.show(found, self.usernames)),
            self._while_open(self.issues.failed),
        )

    def _resolve_issue(self, issue_id: int) -> None:
        self.controller.run(
            lambda: backend.resolve_issue(self.session, issue_id),
            self._while_open(lambda _issue: self.issues.refresh()),
            self._while_open(self.issues.failed),
        )

    def _load_accounts(self) -> None:
        self.controller.run(
            lambda: backend.all_users(self.session),
            self._while_open(self.accounts.show),
            self._while_open(self.accounts.failed),
        )

    def _create_account(self, username: str, display_name: str, password: str, admin: bool) -> None:
        self.controller.run(
            lambda: backend.create_account(self.session, username, display_name, password, admin),
            self._while_open(self.accounts.created),
            self._while_open(self.accounts.failed),
        )

    def _set_disabled(self, user_id: int, disabled: bool) -> None:
        self.controller.run(
            lambda: backend.set_disabled(self.session, user_id, disabled),
            self._while_open(self.accounts.changed),
            self._while_open(self.accounts.failed),
        )

    def _reset_password(self, user_id: int, password: str) -> None:
        username = self.accounts.accounts[str(user_id)].username
        self.controller.run(
            lambda: backend.reset_password(self.session, user_id, password),
            self._while_open(lambda ended: self.accounts.reset_done(username, ended)),
            self._while_open(self.accounts.failed),
        )

    def open_settings(self) -> ThresholdsDialog:
        return ThresholdsDialog(self, self.thresholds, self._thresholds_saved)

    def _thresholds_saved(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        if self.last_stats is not None:
            self.cards.show(cards(self.last_stats, thresholds))
