"""The desktop application: the login screen, then the main window; one ``Controller`` for the network."""

from __future__ import annotations

import gc
import tkinter as tk
from collections.abc import Callable
from typing import Any

import ttkbootstrap as ttk
from workspace.v1 import chat_pb2
from workspace_client import Session
from workspace_client.tk_bridge import Controller

from . import backend
from .chat import one_line
from .login import LoginView
from .notify import notify_send
from .settings import saved_theme
from .window import MainWindow


class DesktopApp:
    """Builds the screens inside ``root`` (a ``ttk.Window``). Tests make one in-process and drive its widgets."""

    def __init__(
        self,
        root: tk.Tk,
        address: str = "127.0.0.1:50051",
        *,
        session_options: dict[str, Any] | None = None,
        resume: bool = True,
        theme: str | None = None,
        notifier: Callable[[str, str], None] = notify_send,
    ) -> None:
        self.root = root
        #: Shows a desktop notification (title, body) for a message that arrives while the window is not focused.
        self.notifier = notifier
        #: Messages from others that arrived while the window was not focused: the badge in the title.
        self.unseen = 0
        self.focused = root.focus_displayof() is not None
        root.bind("<FocusIn>", self._focus_in, add="+")
        root.bind("<FocusOut>", self._focus_out, add="+")
        self.address = address
        self.session_options = session_options or {}
        self.theme = theme or saved_theme()
        self.controller = Controller(root, name="desktop")
        self.session: Session | None = None
        self.main: MainWindow | None = None
        self.login: LoginView | None = None
        root.title("Workspace")
        root.protocol("WM_DELETE_WINDOW", self.close)
        self.set_theme(self.theme)
        self.show_login()
        if resume:
            self.controller.run(lambda: backend.resume(address, **self.session_options), self._resumed, lambda _e: None)

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        ttk.Style().theme_use(theme)
        if self.main is not None:
            self.main.restyle()

    def show_login(self, message: str = "") -> None:
        self.login = LoginView(self.root, self.address, self._submit)
        self.login.pack(fill="both", expand=True)
        if message:
            self.login.message.configure(text=message)

    def _submit(self, address: str, username: str, password: str, stay: bool) -> None:
        self.address = address
        self.controller.run(
            lambda: backend.sign_in(address, username, password, stay, **self.session_options),
            self._signed_in,
            self._refused,
        )

    def _refused(self, error: Exception) -> None:
        if self.login is not None:
            self.login.show_error(error)

    def _resumed(self, session: Session | None) -> None:
        if session is not None and self.main is None:
            self._signed_in(session)

    def _signed_in(self, session: Session) -> None:
        if self.main is not None:  # a remembered session came back while the person was logging in
            self.controller.run(session.close)
            return
        self.session = session
        if self.login is not None:
            self.login.destroy()
            self.login = None
            gc.collect()  # Tk variables and images must die in Tk's thread, not in a worker's collection
        self.main = MainWindow(self.root, self.controller, session, self.logout, self.set_theme, self.theme)
        self.main.pack(fill="both", expand=True)
        self.main.chat.on_incoming = self._incoming
        self.unseen = 0
        self._show_title()
        self.main.start()

    def logout(self, message: str = "") -> None:
        """Back to the login screen; the session ends on the server (unless it already has)."""
        session, self.session = self.session, None
        if self.main is not None:
            self.main.stop()
            self.main.destroy()
            self.main = None
            gc.collect()
        self.unseen = 0
        self._show_title()
        if session is not None:

            def end() -> None:
                try:
                    session.logout()
                finally:
                    session.close()

            self.controller.run(end)
        if self.login is None:
            self.show_login(message)

    # --- focus, the badge and notifications --------------------------------------------------------------------

    def _focus_in(self, _event: tk.Event) -> None:
        self.focused = True
        if self.unseen:
            self.unseen = 0
            self._show_title()

    def _focus_out(self, _event: tk.Event) -> None:
        # Focus moving between two of the window's widgets is a FocusOut then a FocusIn: this is undone at once.
        self.focused = False

    def _show_title(self) -> None:
        title = "Workspace"
        user = self.session.user if self.session is not None and self.main is not None else None
        if user is not None:
            title += f" — {user.display_name or user.username}"
        if self.unseen:
            title = f"({self.unseen}) {title}"
        self.root.title(title)

    def _incoming(self, message: chat_pb2.Message) -> None:
        """A new message from someone else: while the window is not focused, a badge and a notification."""
        if self.focused or self.main is None:
            return
        self.unseen += 1
        self._show_title()
        chat = self.main.chat
        sender = chat.name(message.sender_id)
        conversation = chat.conversations.get(message.conversation_id)
        if conversation is not None and conversation.kind != chat_pb2.CONVERSATION_KIND_DIRECT:
            sender = f"{sender} in {conversation.name}"
        try:
            self.notifier(sender, one_line(message.text, 120) or "New message")
        except Exception:  # a notification never breaks the app; the badge still counts
            pass

    def close(self) -> None:
        if self.main is not None:
            self.main.stream.stop(timeout=2)
        if self.session is not None:
            self.session.close()
        self.controller.close()
        self.root.destroy()
        self.main = self.login = None
        gc.collect()
