"""The desktop application: the login screen, then the main window (the flow is the library's ``SignInApp``)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from typing import Any

import ttkbootstrap as ttk
from workspace.v1 import chat_pb2
from workspace_client import ResumableStream, Session
from workspace_client.tk_app import SignInApp

from . import backend
from .chat import one_line
from .notify import notify_send
from .settings import saved_theme
from .window import MainWindow


class DesktopApp(SignInApp):
    """Builds the screens inside ``root`` (a ``ttk.Window``). Tests make one in-process and drive its widgets."""

    heading = "Workspace"
    subtitle = "Sign in to chat with your team"

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
        super().__init__(root, address, session_options=session_options, name="desktop")
        self.main: MainWindow | None = None
        #: Shows a desktop notification (title, body) for a message that arrives while the window is not focused.
        self.notifier = notifier
        #: Messages from others that arrived while the window was not focused: the badge in the title.
        self.unseen = 0
        self.focused = root.focus_displayof() is not None
        root.bind("<FocusIn>", self._focus_in, add="+")
        root.bind("<FocusOut>", self._focus_out, add="+")
        self.theme = theme or saved_theme()
        root.title("Workspace")
        self.set_theme(self.theme)
        self.begin(resume)

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        ttk.Style().theme_use(theme)
        if self.main is not None:
            self.main.restyle()

    def sign_in(self, address: str, username: str, password: str, stay: bool) -> Session:
        return backend.sign_in(address, username, password, stay, **self.session_options)

    def resume_session(self, address: str) -> Session | None:
        return backend.resume(address, **self.session_options)

    def open_main(self, session: Session) -> MainWindow:
        main = MainWindow(self.root, self.controller, session, self.logout, self.set_theme, self.theme)
        main.chat.on_incoming = self._incoming
        return main

    def streams(self) -> list[ResumableStream]:
        return [self.main.stream] if self.main is not None else []

    def signed_in_changed(self) -> None:
        self.unseen = 0
        self._show_title()

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
