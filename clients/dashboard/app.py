"""The dashboard application: the login screen, then the main window; one ``Controller`` for the network."""

from __future__ import annotations

import tkinter as tk
from typing import Any

from workspace_client import Session

from . import backend
from .config import Thresholds
from .controller import Controller
from .login import LoginView
from .window import MainWindow


class DashboardApp:
    """Builds the screens inside ``root`` (a ``ttk.Window``). Tests make one in-process and drive its widgets."""

    def __init__(
        self,
        root: tk.Tk,
        address: str = "127.0.0.1:50051",
        *,
        thresholds: Thresholds | None = None,
        session_options: dict[str, Any] | None = None,
        resume: bool = True,
        stats_interval: float | None = None,
    ) -> None:
        self.root = root
        self.address = address
        self.thresholds = thresholds if thresholds is not None else Thresholds.load()
        self.session_options = session_options or {}
        self.stats_interval = stats_interval
        self.controller = Controller(root, name="dashboard")
        self.session: Session | None = None
        self.main: MainWindow | None = None
        self.login: LoginView | None = None
        root.title("Workspace dashboard")
        root.protocol("WM_DELETE_WINDOW", self.close)
        self.show_login()
        if resume:
            self.controller.run(lambda: backend.resume(address, **self.session_options), self._resumed, lambda _e: None)

    def show_login(self, message: str = "") -> None:
        self.login = LoginView(self.root, self.address, self._submit)
        self.login.pack(fill="both", expand=True)
        if message:
            self.login.message.configure(text=message)

    def _submit(self, address: str, username: str, password: str) -> None:
        self.address = address
        self.controller.run(
            lambda: backend.sign_in(address, username, password, **self.session_options),
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
        self.main = MainWindow(
            self.root, self.controller, session, self.thresholds, self.logout, stats_interval=self.stats_interval
        )
        self.main.pack(fill="both", expand=True)
        self.main.start()

    def logout(self) -> None:
        session, self.session = self.session, None
        if self.main is not None:
            self.main.stop()
            self.main.destroy()
            self.main = None
        if session is not None:

            def end() -> None:
                try:
                    session.logout()
                finally:
                    session.close()

            self.controller.run(end)
        self.show_login()

    def close(self) -> None:
        if self.main is not None:
            for stream in self.main.streams:
                stream.stop(timeout=2)
            self.main.stop()
        if self.session is not None:
            self.session.close()
        self.controller.close()
        self.root.destroy()
