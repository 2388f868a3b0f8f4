"""The thresholds dialog: when each card turns amber or red; saved to the dashboard's config file."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk

from .config import Thresholds, config_path


class ThresholdsDialog(ttk.Toplevel):
    def __init__(self, parent: tk.Misc, thresholds: Thresholds, on_save: Callable[[Thresholds], None]) -> None:
        super().__init__(title="Card thresholds")
        self.transient(parent)
        self._on_save = on_save
        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        for column, heading in enumerate(("Figure", "Unit", "Amber at", "Red at")):
            ttk.Label(body, text=heading, font=("TkDefaultFont", 9, "bold")).grid(row=0, column=column, sticky="w")
        self.vars: dict[str, tuple[tk.StringVar, tk.StringVar]] = {}
        for row, threshold in enumerate(thresholds, start=1):
            amber, red = tk.StringVar(value=f"{threshold.amber:g}"), tk.StringVar(value=f"{threshold.red:g}")
            self.vars[threshold.key] = (amber, red)
            ttk.Label(body, text=threshold.label).grid(row=row, column=0, sticky="w", padx=(0, 10), pady=2)
            ttk.Label(body, text=threshold.unit, bootstyle="secondary").grid(row=row, column=1, sticky="w", padx=6)
            ttk.Entry(body, textvariable=amber, width=8).grid(row=row, column=2, padx=4, pady=2)
            ttk.Entry(body, textvariable=red, width=8).grid(row=row, column=3, padx=4, pady=2)
        self.message = ttk.Label(body, text=f"Saved in {config_path()}", bootstyle="secondary", wraplength=420)
        self.message.grid(row=len(self.vars) + 1, column=0, columnspan=4, sticky="w", pady=(8, 4))
        buttons = ttk.Frame(body)
        buttons.grid(row=len(self.vars) + 2, column=0, columnspan=4, sticky="e")
        ttk.Button(buttons, text="Cancel", command=self.destroy, bootstyle="secondary").pack(side="right")
        self.save_button = ttk.Button(buttons, text="Save", command=self.save, bootstyle="primary")
        self.save_button.pack(side="right", padx=6)

    def save(self) -> None:
        try:
            overrides = {}
            for key, (amber, red) in self.vars.items():
                a, r = float(amber.get()), float(red.get())
                if not 0 <= a <= r:
                    raise ValueError(f"{key}: amber must be between 0 and red")
                overrides[key] = {"amber": a, "red": r}
        except ValueError as error:
            self.message.configure(text=f"Not saved: {error}", bootstyle="danger")
            return
        thresholds = Thresholds(overrides)
        thresholds.save()
        self._on_save(thresholds)
        self.destroy()
