"""The row of cards at the top: one figure each, coloured by the thresholds (docs/DASHBOARD.md)."""

from __future__ import annotations

import tkinter as tk

import ttkbootstrap as ttk

from .figures import CARD_TITLES, LEVEL_STYLE, CardValue

#: A card's smallest width, pixels: the cards wrap onto more rows below this.
CARD_WIDTH = 136


class Card(ttk.Labelframe):
    def __init__(self, parent: tk.Misc, title: str) -> None:
        super().__init__(parent, text=title, padding=(8, 2, 8, 6), bootstyle="secondary")
        self.value = ttk.Label(self, text="—", font=("TkDefaultFont", 16, "bold"), bootstyle="secondary")
        self.value.pack(anchor="w")
        self.detail = ttk.Label(self, text="", font=("TkDefaultFont", 8), bootstyle="secondary")
        self.detail.pack(anchor="w")
        self.level = "none"

    def show(self, card: CardValue) -> None:
        if self.value.cget("text") != card.value:
            self.value.configure(text=card.value)
        if self.detail.cget("text") != card.detail:
            self.detail.configure(text=card.detail)
        if card.level != self.level:
            self.level = card.level
            style = LEVEL_STYLE[card.level]
            self.configure(bootstyle=style)
            self.value.configure(bootstyle=style)


class CardsView(ttk.Frame):
    """The cards, by key (``people``, ``streams``, ...), in as many columns as the width allows."""

    def __init__(self, parent: tk.Misc) -> None:
        super().__init__(parent, padding=(6, 4))
        self.cards = {key: Card(self, title) for key, title in CARD_TITLES.items()}
        self._columns = 0
        self.bind("<Configure>", self._layout)
        self._layout()

    def _layout(self, _event: tk.Event | None = None) -> None:
        width = self.winfo_width() if self.winfo_ismapped() else 1280
        columns = max(3, min(len(self.cards), width // CARD_WIDTH))
        if columns == self._columns:
            return
        self._columns = columns
        for index, card in enumerate(self.cards.values()):
            card.grid(row=index // columns, column=index % columns, sticky="nsew", padx=3, pady=3)
        for column in range(len(self.cards)):
            self.columnconfigure(
                column, weight=1 if column < columns else 0, uniform="card" if column < columns else ""
            )

    def show(self, values: dict[str, CardValue]) -> None:
        for key, value in values.items():
            self.cards[key].show(value)

    def stale(self) -> None:
        """The figures are not current (connection lost): grey them, keep the last values."""
        for card in self.cards.values():
            card.show(CardValue(card.value.cget("text"), card.detail.cget("text"), "none"))
