"""What both Tk apps (the desktop app and the dashboard) share: a login screen, then a main window.

``SignInApp`` owns the flow: the login screen, a remembered session tried in the background at start, the
sign-in in a worker thread, the main window once signed in, logging out back to the login screen, and closing.
An app says what differs by overriding a few methods: how it signs in and resumes (``sign_in``,
``resume_session``, run in a worker thread), what its main window is (``open_main``), and which streams it
stops and waits for when the window closes (``streams``).

Needs Tk and ttkbootstrap (the ``desktop`` extra); the rest of the library does not import this module.
"""

from __future__ import annotations

import gc
import tkinter as tk
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ttkbootstrap as ttk

from .session import Session
from .streams import ResumableStream
from .tk_bridge import Controller


class LoginView(ttk.Frame):
    """Server address, username, password, optionally "stay signed in", and a clear sentence when it fails."""

    def __init__(
        self,
        parent: tk.Misc,
        address: str,
        on_submit: Callable[[str, str, str, bool], None],
        *,
        heading: str,
        subtitle: str,
        offer_stay: bool = True,
    ) -> None:
        super().__init__(parent, padding=30)
        self._on_submit = on_submit
        box = ttk.Frame(self)
        box.place(relx=0.5, rely=0.4, anchor="center")
        ttk.Label(box, text=heading, font=("TkDefaultFont", 20, "bold")).grid(
            row=0, column=0, columnspan=2, pady=(0, 4)
        )
        ttk.Label(box, text=subtitle, bootstyle="secondary").grid(row=1, column=0, columnspan=2, pady=(0, 10))
        self.address, self.username, self.password = tk.StringVar(value=address), tk.StringVar(), tk.StringVar()
        self.entries: dict[str, ttk.Entry] = {}
        for row, (label, var, show) in enumerate(
            (("Server", self.address, ""), ("Username", self.username, ""), ("Password", self.password, "•")),
            start=2,
        ):
            ttk.Label(box, text=label).grid(row=row, column=0, sticky="w", padx=(0, 10), pady=4)
            entry = ttk.Entry(box, textvariable=var, show=show, width=32)
            entry.grid(row=row, column=1, sticky="ew", pady=4)
            entry.bind("<Return>", lambda _e: self.submit())
            self.entries[label.lower()] = entry
        #: "Stay signed in": without the box (the dashboard), the session is always remembered.
        self.stay = tk.BooleanVar(value=True)
        self.stay_box: ttk.Checkbutton | None = None
        if offer_stay:
            self.stay_box = ttk.Checkbutton(box, text="Stay signed in on this computer", variable=self.stay)
            self.stay_box.grid(row=5, column=1, sticky="w", pady=(6, 0))
        self.button = ttk.Button(box, text="Log in", command=self.submit, bootstyle="primary", width=12)
        self.button.grid(row=6, column=1, sticky="e", pady=(10, 4))
        self.message = ttk.Label(box, text="", bootstyle="danger", wraplength=380, justify="left")
        self.message.grid(row=7, column=0, columnspan=2, sticky="w", pady=(6, 0))
        self.entries["username" if address else "server"].focus_set()

    def submit(self) -> None:
        address, username, password = self.address.get().strip(), self.username.get().strip(), self.password.get()
        if not address or not username or not password:
            self.show_error(ValueError("Enter the server address, your username and your password."))
            return
        self.button.configure(state="disabled")
        self.message.configure(text="Logging in…", bootstyle="secondary")
        self._on_submit(address, username, password, self.stay.get())

    def show_error(self, error: Exception) -> None:
        self.button.configure(state="normal")
        self.password.set("")
        self.message.configure(text=str(error), bootstyle="danger")


class MainView(Protocol):
    """What ``SignInApp`` needs of an app's main window (a frame it packs into the root)."""

    def pack(self, **options: Any) -> None: ...
    def destroy(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class SignInApp:
    """The login screen, then the main window, in ``root`` (a ``ttk.Window``); one ``Controller`` for the network.

    Subclasses set ``heading``, ``subtitle`` and ``offer_stay``, override the hooks below, and call
    ``begin(resume)`` at the end of their ``__init__``.
    """

    heading = "Workspace"
    subtitle = ""
    offer_stay = True

    def __init__(
        self, root: tk.Tk, address: str, *, session_options: dict[str, Any] | None = None, name: str = "app"
    ) -> None:
        self.root = root
        self.address = address
        self.session_options = session_options or {}
        self.controller = Controller(root, name=name)
        self.session: Session | None = None
        self.main: Any = None
        self.login: LoginView | None = None
        root.protocol("WM_DELETE_WINDOW", self.close)

    # --- what an app says ---------------------------------------------------------------------------------------

    def sign_in(self, address: str, username: str, password: str, stay: bool) -> Session:
        """A worker thread: a signed-in session, or an exception whose text the login screen shows."""
        raise NotImplementedError

    def resume_session(self, address: str) -> Session | None:
        """A worker thread: the remembered session for ``address`` if there is one and it still works."""
        raise NotImplementedError

    def open_main(self, session: Session) -> MainView:
        """Tk's thread: the main window for ``session`` (not packed, not started)."""
        raise NotImplementedError

    def streams(self) -> Sequence[ResumableStream]:
        """The main window's streams, stopped and waited for when the app closes."""
        return ()

    def signed_in_changed(self) -> None:
        """Tk's thread: called after the main window opened or closed (the desktop app retitles its window)."""

    # --- the flow -------------------------------------------------------------------------------------------------

    def begin(self, resume: bool) -> None:
        self.show_login()
        if resume:
            address = self.address
            self.controller.run(lambda: self.resume_session(address), self._resumed, lambda _e: None)

    def show_login(self, message: str = "") -> None:
        self.login = LoginView(
            self.root,
            self.address,
            self._submit,
            heading=self.heading,
            subtitle=self.subtitle,
            offer_stay=self.offer_stay,
        )
        self.login.pack(fill="both", expand=True)
        if message:
            self.login.message.configure(text=message)

    def _submit(self, address: str, username: str, password: str, stay: bool) -> None:
        self.address = address
        self.controller.run(lambda: self.sign_in(address, username, password, stay), self._signed_in, self._refused)

    def _refused(self, error: Exception) -> None:
        if self.login is not None:
            self.login.show_error(error)

    def _resumed(self, session: Session | None) -> None:
        if session is not None:
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
        self.main = self.open_main(session)
        self.main.pack(fill="both", expand=True)
        self.main.start()
        self.signed_in_changed()

    def logout(self, message: str = "") -> None:
        """Back to the login screen; the session ends on the server (unless it already has)."""
        session, self.session = self.session, None
        if self.main is not None:
            self.main.stop()
            self.main.destroy()
            self.main = None
            gc.collect()
        self.signed_in_changed()
        if session is not None:

            def end() -> None:
                try:
                    session.logout()
                finally:
                    session.close()

            self.controller.run(end)
        if self.login is None:
            self.show_login(message)

    def close(self) -> None:
        """The window closes: streams stopped (waited for, briefly), the channel closed, the root destroyed."""
        if self.main is not None:
            for stream in self.streams():
                stream.stop(timeout=2)
            self.main.stop()
        if self.session is not None:
            self.session.close()
        self.controller.close()
        self.root.destroy()
        self.main = self.login = None
        gc.collect()
