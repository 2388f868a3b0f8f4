"""The dashboard application: the login screen, then the main window (the flow is the library's ``SignInApp``)."""

from __future__ import annotations

import tkinter as tk
from typing import Any

from workspace_client import ResumableStream, Session
from workspace_client.tk_app import SignInApp

from . import backend
from .config import Thresholds
from .window import MainWindow


class DashboardApp(SignInApp):
    """Builds the screens inside ``root`` (a ``ttk.Window``). Tests make one in-process and drive its widgets."""

    heading = "Workspace dashboard"
    subtitle = "Administrators only"
    #: The dashboard always remembers its session (in the keyring or the owner-only file).
    offer_stay = False

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
        super().__init__(root, address, session_options=session_options, name="dashboard")
        self.main: MainWindow | None = None
        self.thresholds = thresholds if thresholds is not None else Thresholds.load()
        self.stats_interval = stats_interval
        root.title("Workspace dashboard")
        self.begin(resume)

    def sign_in(self, address: str, username: str, password: str, stay: bool) -> Session:
        return backend.sign_in(address, username, password, **self.session_options)

    def resume_session(self, address: str) -> Session | None:
        return backend.resume(address, **self.session_options)

    def open_main(self, session: Session) -> MainWindow:
        return MainWindow(
            self.root, self.controller, session, self.thresholds, self.logout, stats_interval=self.stats_interval
        )

    def streams(self) -> list[ResumableStream]:
        return list(self.main.streams) if self.main is not None else []
