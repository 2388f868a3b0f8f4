"""Settings: the person's display name, password, the light or dark theme, and logging out."""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import users_pb2
from workspace_client import Session
from workspace_client.tk_bridge import Controller
from workspace_client.tokens import config_dir

from . import backend

THEMES = {"Light": "bootstrap-light", "Dark": "bootstrap-dark"}


def saved_theme() -> str:
    """The theme chosen last time (``desktop.json`` in the client config folder), else the light one."""
    try:
        theme = json.loads((config_dir() / "desktop.json").read_text()).get("theme", "")
    except (FileNotFoundError, ValueError, AttributeError):
        return THEMES["Light"]
    return theme if theme in THEMES.values() else THEMES["Light"]


def save_theme(theme: str) -> None:
    path = config_dir() / "desktop.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": theme}, indent=2) + "\n")


class SettingsView(ttk.Frame):
    def __init__(
        self,
        parent: tk.Misc,
        controller: Controller,
        session: Session,
        on_error: Callable[[Exception, str], None],
        on_logout: Callable[[str], None],
        on_theme: Callable[[str], None],
        theme: str,
    ) -> None:
        super().__init__(parent, padding=20)
        self.controller, self.session, self.on_error, self.on_theme = controller, session, on_error, on_theme
        #: Called with the account after the display name changed.
        self.on_renamed: Callable[[users_pb2.User], None] = lambda user: None
        assert session.user is not None
        self.columnconfigure(3, weight=1)

        row = self._section("Your name", 0)
        ttk.Label(self, text="Display name").grid(row=row, column=0, sticky="w", padx=(0, 10), pady=3)
        self.display_name = ttk.Entry(self, width=36)
        self.display_name.insert(0, session.user.display_name)
        self.display_name.grid(row=row, column=1, sticky="w", pady=3)
        self.rename_button = ttk.Button(self, text="Save name", command=self.rename, bootstyle="primary-outline")
        self.rename_button.grid(row=row, column=2, sticky="w", padx=8)
        self.name_result = ttk.Label(self, text=f"Username: {session.user.username}", bootstyle="secondary")
        self.name_result.grid(row=row + 1, column=1, columnspan=2, sticky="w")

        row = self._section("Password", row + 2)
        self.passwords: dict[str, ttk.Entry] = {}
        for offset, label in enumerate(("Current password", "New password", "New password again")):
            ttk.Label(self, text=label).grid(row=row + offset, column=0, sticky="w", padx=(0, 10), pady=3)
            entry = ttk.Entry(self, show="•", width=36)
            entry.grid(row=row + offset, column=1, sticky="w", pady=3)
            self.passwords[label] = entry
        self.password_button = ttk.Button(
            self, text="Change password", command=self.change_password, bootstyle="primary-outline"
        )
        self.password_button.grid(row=row + 2, column=2, sticky="w", padx=8)
        self.password_result = ttk.Label(self, text="At least 8 characters. Your other devices are signed out.")
        self.password_result.configure(bootstyle="secondary")
        self.password_result.grid(row=row + 3, column=1, columnspan=2, sticky="w")

        row = self._section("Appearance", row + 4)
        ttk.Label(self, text="Theme").grid(row=row, column=0, sticky="w", padx=(0, 10), pady=3)
        self.theme = tk.StringVar(value=next((k for k, v in THEMES.items() if v == theme), "Light"))
        themes = ttk.Frame(self)
        themes.grid(row=row, column=1, sticky="w")
        self.theme_buttons = {}
        for label in THEMES:
            button = ttk.Radiobutton(themes, text=label, value=label, variable=self.theme, command=self.change_theme)
            button.pack(side="left", padx=(0, 14))
            self.theme_buttons[label] = button

        row = self._section("Session", row + 1)
        ttk.Label(self, text=f"Signed in to {session.address} as {session.user.username}").grid(
            row=row, column=0, columnspan=2, sticky="w"
        )
        self.logout_button = ttk.Button(self, text="Log out", command=lambda: on_logout(""), bootstyle="danger-outline")
        self.logout_button.grid(row=row, column=2, sticky="w", padx=8)

    def _section(self, title: str, row: int) -> int:
        ttk.Label(self, text=title, font=("TkDefaultFont", 12, "bold")).grid(
            row=row, column=0, columnspan=3, sticky="w", pady=(16 if row else 0, 6)
        )
        return row + 1

    def rename(self) -> None:
        name = self.display_name.get().strip()

        def done(user) -> None:  # type: ignore[no-untyped-def]
            self.name_result.configure(text=f"Saved. Others now see you as “{user.display_name}”.", bootstyle="success")
            self.on_renamed(user)

        self.controller.run(lambda: backend.rename(self.session, name), done, lambda e: self.on_error(e, "rename you"))

    def change_password(self) -> None:
        old, new, again = (entry.get() for entry in self.passwords.values())
        if not old or not new:
            self.password_result.configure(text="Enter your current and your new password.", bootstyle="danger")
            return
        if new != again:
            self.password_result.configure(text="The two new passwords differ.", bootstyle="danger")
            return

        def done(_result: object) -> None:
            for entry in self.passwords.values():
                entry.delete(0, "end")
            self.password_result.configure(text="Password changed.", bootstyle="success")

        def failed(error: Exception) -> None:
            self.password_result.configure(text=str(error), bootstyle="danger")

        self.controller.run(lambda: backend.change_password(self.session, old, new), done, failed)

    def change_theme(self) -> None:
        theme = THEMES[self.theme.get()]
        save_theme(theme)
        self.on_theme(theme)
