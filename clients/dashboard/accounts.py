"""Account administration: list, create, disable and enable again, reset a password."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import users_pb2

from .figures import local_time
from .tables import Table


class AccountsView(ttk.Frame):
    """The window supplies the calls: ``load()``, ``create(username, display, password, admin)``,
    ``set_disabled(user_id, disabled)``, ``reset_password(user_id, password)``; each answers through ``show`` /
    ``created`` / ``changed`` / ``reset_done`` / ``failed``."""

    def __init__(
        self,
        parent: tk.Misc,
        load: Callable[[], None],
        create: Callable[[str, str, str, bool], None],
        set_disabled: Callable[[int, bool], None],
        reset_password: Callable[[int, str], None],
    ) -> None:
        super().__init__(parent, padding=6)
        self._load, self._create, self._set_disabled = load, create, set_disabled
        self._reset_password = reset_password
        bar = ttk.Frame(self)
        bar.pack(fill="x", pady=(0, 6))
        ttk.Button(bar, text="Refresh", command=self.refresh, bootstyle="secondary").pack(side="left")
        self.toggle_button = ttk.Button(
            bar, text="Disable", command=self.toggle_selected, bootstyle="warning", state="disabled"
        )
        self.toggle_button.pack(side="left", padx=12)
        self.new_password = tk.StringVar()
        ttk.Label(bar, text="New password").pack(side="left")
        ttk.Entry(bar, textvariable=self.new_password, show="•", width=16).pack(side="left", padx=(4, 4))
        self.reset_button = ttk.Button(
            bar, text="Reset password", command=self.reset_selected, bootstyle="danger-outline", state="disabled"
        )
        self.reset_button.pack(side="left", padx=(0, 12))
        self.note = ttk.Label(bar, text="", bootstyle="secondary")
        self.note.pack(side="left")
        body = ttk.Frame(self)
        body.pack(fill="both", expand=True)
        self.table = Table(
            body,
            (
                ("id", "#", 50, False),
                ("username", "Username", 140, False),
                ("name", "Name", 160, True),
                ("role", "Role", 70, False),
                ("state", "State", 80, False),
                ("login", "Last log-in", 170, False),
            ),
        )
        self.table.pack(side="left", fill="both", expand=True)
        self.table.tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        form = ttk.Labelframe(body, text="New account", padding=8)
        form.pack(side="left", fill="y", padx=(8, 0))
        self.username, self.display_name, self.password = tk.StringVar(), tk.StringVar(), tk.StringVar()
        self.admin = tk.BooleanVar(value=False)
        for row, (label, var, show) in enumerate(
            (("Username", self.username, ""), ("Name", self.display_name, ""), ("Password", self.password, "•"))
        ):
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", pady=2)
            ttk.Entry(form, textvariable=var, show=show, width=18).grid(row=row, column=1, sticky="ew", pady=2)
        ttk.Checkbutton(form, text="Administrator", variable=self.admin).grid(row=3, column=1, sticky="w", pady=4)
        self.create_button = ttk.Button(form, text="Create", command=self.submit, bootstyle="primary")
        self.create_button.grid(row=4, column=1, sticky="e")
        self.accounts: dict[str, users_pb2.User] = {}

    def refresh(self) -> None:
        self._load()

    def show(self, users: list[users_pb2.User]) -> None:
        self.accounts = {str(u.id): u for u in users}
        self.table.replace(
            [
                (
                    str(u.id),
                    (
                        u.id,
                        u.username,
                        u.display_name,
                        "admin" if u.role == users_pb2.ROLE_ADMIN else "user",
                        "disabled" if u.disabled else "active",
                        local_time(u.last_login_time),
                    ),
                )
                for u in users
            ]
        )
        self._selection_changed()

    def submit(self) -> None:
        if not self.username.get().strip() or not self.password.get():
            self.failed(ValueError("A username and a password are needed."))
            return
        self.create_button.configure(state="disabled")
        self._create(
            self.username.get().strip(), self.display_name.get().strip(), self.password.get(), self.admin.get()
        )

    def created(self, user: users_pb2.User) -> None:
        self.create_button.configure(state="normal")
        for var in (self.username, self.display_name, self.password):
            var.set("")
        self.admin.set(False)
        self.note.configure(text=f"Created {user.username}.", bootstyle="success")
        self.refresh()

    def changed(self, user: users_pb2.User) -> None:
        self.note.configure(
            text=f"{user.username} is {'disabled' if user.disabled else 'enabled again'}.", bootstyle="success"
        )
        self.refresh()

    def failed(self, error: Exception) -> None:
        self.create_button.configure(state="normal")
        self._selection_changed()
        self.note.configure(text=str(error), bootstyle="danger")

    def reset_selected(self) -> None:
        user = self.accounts.get(self.table.selected() or "")
        if user is None:
            return
        if not self.new_password.get():
            self.failed(ValueError(f"Type the new password for {user.username} first."))
            return
        self.reset_button.configure(state="disabled")
        self._reset_password(user.id, self.new_password.get())

    def reset_done(self, username: str, sessions_ended: int) -> None:
        self.new_password.set("")
        self.reset_button.configure(state="normal")
        self.note.configure(
            text=f"New password set for {username}; {sessions_ended} session(s) ended.", bootstyle="success"
        )

    def toggle_selected(self) -> None:
        user = self.accounts.get(self.table.selected() or "")
        if user is not None:
            self.toggle_button.configure(state="disabled")
            self._set_disabled(user.id, not user.disabled)

    def _selection_changed(self) -> None:
        user = self.accounts.get(self.table.selected() or "")
        self.toggle_button.configure(
            state="normal" if user is not None else "disabled", text="Enable" if user and user.disabled else "Disable"
        )
        self.reset_button.configure(state="normal" if user is not None else "disabled")
