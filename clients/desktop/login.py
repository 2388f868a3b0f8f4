"""The login screen: server address, username, password, "stay signed in", and a clear sentence when it fails."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk


class LoginView(ttk.Frame):
    def __init__(
        self, parent: tk.Misc, address: str, on_submit: Callable[[str, str, str, bool], None], stay: bool = True
    ) -> None:
        super().__init__(parent, padding=30)
        self._on_submit = on_submit
        box = ttk.Frame(self)
        box.place(relx=0.5, rely=0.4, anchor="center")
        ttk.Label(box, text="Workspace", font=("TkDefaultFont", 20, "bold")).grid(
            row=0, column=0, columnspan=2, pady=(0, 4)
        )
        ttk.Label(box, text="Sign in to chat with your team", bootstyle="secondary").grid(
            row=1, column=0, columnspan=2, pady=(0, 10)
        )
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
        self.stay = tk.BooleanVar(value=stay)
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
