"""The main window after login: the views in a notebook, an error bar that says what went wrong in a sentence
(with "Report a problem"), and the status bar that always shows the connection state."""

from __future__ import annotations

import tkinter as tk
import traceback
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import chat_pb2, users_pb2
from workspace_client import NotSignedIn, Session, StateChange, StreamState, event_stream, sentence
from workspace_client.tk_bridge import Controller

from . import backend
from .agenda import AgendaView
from .chat import ChatView, one_line
from .idle import IdleWatcher
from .lots import LotsView
from .settings import SettingsView
from .shortcuts import ShortcutsView

STATE_STYLE = {
    StreamState.CONNECTING: "info",
    StreamState.CONNECTED: "success",
    StreamState.RECONNECTING: "warning",
    StreamState.STOPPED: "danger",
}


class StatusBar(ttk.Frame):
    def __init__(self, parent: tk.Misc, who: str, on_report: Callable[[], None], on_logout: Callable[[], None]):
        super().__init__(parent, padding=(8, 3))
        self.state = ttk.Label(self, text="● Connecting…", bootstyle="info", font=("TkDefaultFont", 9, "bold"))
        self.state.pack(side="left")
        ttk.Button(self, text="Log out", command=on_logout, bootstyle="secondary-link").pack(side="right")
        self.report_button = ttk.Button(self, text="Report a problem", command=on_report, bootstyle="secondary-link")
        self.report_button.pack(side="right")
        self.who = ttk.Label(self, text=who, bootstyle="secondary")
        self.who.pack(side="right", padx=10)
        # Packed last: when the window is narrow, the detail is what gets cut, never the buttons.
        self.detail = ttk.Label(self, text="", bootstyle="secondary")
        self.detail.pack(side="left", padx=10, fill="x", expand=True)
        self.level = StreamState.CONNECTING

    def show(self, state: StreamState, text: str, detail: str = "") -> None:
        if state != self.level:
            self.level = state
            self.state.configure(bootstyle=STATE_STYLE[state])
        self.state.configure(text=f"● {text}")
        self.detail.configure(text=detail if len(detail) < 120 else detail[:119] + "…")


class ErrorBar(ttk.Frame):
    """Hidden until something fails; then one sentence, "Report a problem" and "Dismiss"."""

    def __init__(self, parent: tk.Misc, on_report: Callable[[], None]) -> None:
        super().__init__(parent, padding=(10, 6), bootstyle="danger")
        self.label = ttk.Label(self, text="", bootstyle="@danger", wraplength=900, justify="left")
        self.label.pack(side="left", fill="x", expand=True)
        self.dismiss_button = ttk.Button(self, text="Dismiss", command=self.hide, bootstyle="light")
        self.dismiss_button.pack(side="right")
        ttk.Button(self, text="Report a problem", command=on_report, bootstyle="light").pack(side="right", padx=6)
        self.bind("<Configure>", lambda e: self.label.configure(wraplength=max(200, e.width - 280)))
        self.visible = False
        #: The widget the bar appears above.
        self.above: tk.Misc | None = None

    def show(self, text: str) -> None:
        self.label.configure(text=text)
        if not self.visible:
            self.visible = True
            self.pack(side="top", fill="x", padx=6, pady=(6, 0), before=self.above)

    def hide(self) -> None:
        self.visible = False
        self.pack_forget()


class ReportDialog(ttk.Toplevel):
    """Says what happened in the person's words and sends it with ``MonitoringService.ReportClientIssue``.
    Not modal: the app keeps working while it is open."""

    def __init__(self, parent: tk.Misc, controller: Controller, session: Session, message: str, context: str):
        super().__init__(title="Report a problem", resizable=(True, True))
        self.transient(parent.winfo_toplevel())
        self.controller, self.session, self.context = controller, session, context
        frame = ttk.Frame(self, padding=14)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text="What happened? The administrators will see this.", wraplength=420).pack(anchor="w")
        self.text = tk.Text(frame, height=6, width=56, wrap="word", font=("TkDefaultFont", 10))
        self.text.pack(fill="both", expand=True, pady=8)
        self.text.insert("1.0", message)
        buttons = ttk.Frame(frame)
        buttons.pack(fill="x")
        self.result = ttk.Label(buttons, text="", bootstyle="secondary", wraplength=300)
        self.result.pack(side="left")
        ttk.Button(buttons, text="Close", command=self.destroy, bootstyle="secondary-outline").pack(side="right")
        self.send_button = ttk.Button(buttons, text="Send report", command=self.send, bootstyle="primary")
        self.send_button.pack(side="right", padx=6)
        self.issue_id = 0

    def send(self) -> None:
        message = self.text.get("1.0", "end-1c").strip()
        if not message:
            self.result.configure(text="Say in a few words what happened.", bootstyle="danger")
            return
        self.send_button.configure(state="disabled")
        self.result.configure(text="Sending…", bootstyle="secondary")

        def done(issue) -> None:  # type: ignore[no-untyped-def]
            self.issue_id = issue.id
            self.result.configure(text=f"Thank you: sent as report #{issue.id}.", bootstyle="success")

        def failed(error: Exception) -> None:
            self.send_button.configure(state="normal")
            self.result.configure(text=sentence(error, "send the report"), bootstyle="danger")

        self.controller.run(lambda: backend.report_problem(self.session, message, self.context), done, failed)


class MainWindow(ttk.Frame):
    def __init__(
        self,
        parent: tk.Misc,
        controller: Controller,
        session: Session,
        on_logout: Callable[[str], None],
        on_theme: Callable[[str], None],
        theme: str,
    ) -> None:
        super().__init__(parent)
        self.controller, self.session, self.on_logout = controller, session, on_logout
        assert session.user is not None
        who = f"{session.user.display_name or session.user.username} @ {session.address}"
        self.status = StatusBar(self, who, self.report_problem, lambda: on_logout(""))
        self.status.pack(side="bottom", fill="x")
        ttk.Separator(self).pack(side="bottom", fill="x")
        self.errors = ErrorBar(self, self.report_problem)
        self.notebook = ttk.Notebook(self)
        self.notebook.pack(side="top", fill="both", expand=True, padx=6, pady=6)
        self.errors.above = self.notebook
        self.chat = ChatView(self.notebook, controller, session, self.show_error)
        self.agenda = AgendaView(self.notebook, controller, session, self.show_error)
        self.shortcuts = ShortcutsView(self.notebook, controller, session, self.show_error)
        self.lots = LotsView(self.notebook, controller, session, self.show_error)
        self.settings = SettingsView(self.notebook, controller, session, self.show_error, on_logout, on_theme, theme)
        self.settings.on_renamed = self._renamed
        self.notebook.add(self.chat, text="  Chat  ")
        self.notebook.add(self.agenda, text="  Agenda  ")
        self.notebook.add(self.shortcuts, text="  Shortcuts  ")
        self.notebook.add(self.lots, text="  Lots  ")
        self.notebook.add(self.settings, text="  Settings  ")
        self.last_error = ""
        self.last_context = ""
        self.report: ReportDialog | None = None
        self.stream_state = StreamState.CONNECTING
        self.live = False
        self.was_connected = False
        self.events_seen = 0
        self.closed = False
        self._reconnecting: StateChange | None = None
        self.chat.on_outbox = self.outbox_changed
        #: Away after WORKSPACE_DESKTOP_IDLE_MINUTES without input in the window, online again at the next.
        self.idle = IdleWatcher(self, controller, session)
        self.stream = event_stream(
            session,
            on_item=lambda item: controller.post(self._event, item),
            on_state=lambda change: controller.post(self._stream_state, change),
            on_resync=lambda: controller.post(self.chat.load),
            deliver_heartbeats=True,
        )
        self.winfo_toplevel().report_callback_exception = self._unexpected  # type: ignore[method-assign]

    def start(self) -> None:
        self.stream.start()
        self.idle.start()
        self.chat.load()
        self.agenda.load()
        self.shortcuts.load()
        self.lots.load()

    def stop(self) -> None:
        self.closed = True
        self.idle.stop()
        stream = self.stream
        self.controller.run(lambda: stream.stop(timeout=2))

    def _renamed(self, user: users_pb2.User) -> None:
        self.status.who.configure(text=f"{user.display_name or user.username} @ {self.session.address}")
        self.chat.users[user.id] = user

    def restyle(self) -> None:
        """After a theme change: the widgets Tk does not theme (Text views) take the new colours."""
        self.chat._style_text()
        self.agenda.restyle()

    # --- the stream ----------------------------------------------------------------------------------------

    def _event(self, response: chat_pb2.StreamEventsResponse) -> None:
        if self.closed:  # handed over after logging out
            return
        event = response.event
        if event.HasField("heartbeat"):
            if event.heartbeat.live and not self.live:
                self.live = True
                self._stream_state(StateChange(StreamState.CONNECTED))
            return
        self.events_seen += 1
        self.chat.handle_event(event)

    def _stream_state(self, change: StateChange) -> None:
        if self.closed:
            return
        self.stream_state = change.state
        if change.state == StreamState.CONNECTING:
            self.status.show(change.state, "Connecting…")
        elif change.state == StreamState.CONNECTED:
            if self.live:
                self.status.show(change.state, "Connected", "up to date")
            else:
                self.status.show(change.state, "Connected", "catching up…")
            if not self.was_connected or not self.chat.online:
                if self.was_connected:
                    self.chat.load_people()  # presence may have changed while the stream was down
                self.was_connected = True
                self.chat.set_online(True)
            self.lots.connection_back()  # scans that waited for the server go now
        elif change.state == StreamState.RECONNECTING:
            self.live = False
            self.chat.set_online(False)
            self._reconnecting = change
            self.outbox_changed()
        else:
            self.chat.set_online(False)
            self.status.show(change.state, "Disconnected", change.error)
            if change.error:  # the session ended (password changed elsewhere, account disabled, logged out)
                self.on_logout(f"You were signed out: {change.error}")

    def outbox_changed(self) -> None:
        """While reconnecting, the status bar also says how many messages wait to be sent."""
        change = self._reconnecting
        if self.closed or change is None or self.stream_state != StreamState.RECONNECTING:
            return
        waiting = len(self.chat.outbox)
        outbox = f"; {waiting} message{'s' if waiting != 1 else ''} waiting to be sent" if waiting else ""
        why = one_line(change.error.split(";")[0], 60) if change.error else "the server does not answer"
        self.status.show(change.state, f"Reconnecting… (attempt {change.attempt})", f"Connection lost: {why}{outbox}")

    # --- errors ----------------------------------------------------------------------------------------------

    def show_error(self, error: Exception, doing: str) -> None:
        if isinstance(error, NotSignedIn):
            self.on_logout(str(error))
            return
        self.last_error = sentence(error, doing)
        self.last_context = "".join(traceback.format_exception(error))
        self.errors.show(self.last_error)

    def _unexpected(self, kind, value, trace) -> None:  # type: ignore[no-untyped-def]
        self.last_error = sentence(value, "finish that")
        self.last_context = "".join(traceback.format_exception(kind, value, trace))
        self.errors.show(self.last_error)

    def report_problem(self) -> None:
        if self.report is not None and self.report.winfo_exists():
            self.report.lift()
            return
        self.report = ReportDialog(self, self.controller, self.session, self.last_error, self.last_context)
