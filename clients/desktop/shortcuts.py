"""Shortcuts: the person's saved links, in categories they arrange; search, add, edit, delete, reorder, open.

Shortcuts and categories are reordered with ▲ ▼ (the keyboard's way) or by dragging their rows with the mouse.
"""

from __future__ import annotations

import tkinter as tk
import webbrowser
from collections.abc import Callable

import ttkbootstrap as ttk
from workspace.v1 import shortcuts_pb2
from workspace_client import Session
from workspace_client.tk_bridge import Controller

from . import backend

#: The two lists that are not categories, as ids in the category list.
ALL, UNCATEGORISED = "all", "none"
#: The search is run this long after the last key, ms.
SEARCH_DELAY_MS = 300
CONFIRM_MS = 4000
#: A press that moves less than this (pixels) before its release is a click, not a drag.
DRAG_PIXELS = 5


class RowDrag:
    """Reorders a Treeview's rows with the mouse: press on a row, drag, release.

    While dragging, the row follows the pointer: it takes the place of the row under it, so the list shows
    where it will land. Escape puts every row back; a press that moves less than ``DRAG_PIXELS`` stays a click
    (the Treeview's own bindings select the row either way). ``on_drop(row, target)`` gets the dragged row and
    the last row it took the place of; the view asks the server, then reloads the list in the server's order.
    """

    def __init__(
        self,
        tree: ttk.Treeview,
        movable: Callable[[str], bool],
        on_drop: Callable[[str, str], None],
        on_hover: Callable[[str, str], None] = lambda row, target: None,
    ) -> None:
        self.tree, self.movable, self.on_drop, self.on_hover = tree, movable, on_drop, on_hover
        #: The row pressed on (None: no drag possible), and where the press was.
        self.row: str | None = None
        self.start = (0, 0)
        self.dragging = False
        self.target = ""
        #: The rows' order when the drag started, to put back on Escape.
        self.origin: tuple[str, ...] = ()
        tree.bind("<ButtonPress-1>", self._press, add="+")
        # A press soon after a click is a double click, which Tk gives to <Double-1> only: a drag can start there too.
        tree.bind("<Double-ButtonPress-1>", self._press, add="+")
        tree.bind("<B1-Motion>", self._motion, add="+")
        tree.bind("<ButtonRelease-1>", self._release, add="+")
        tree.bind("<Escape>", self._escape, add="+")

    def _press(self, event: tk.Event) -> None:
        row = self.tree.identify_row(event.y)
        on_row = self.tree.identify_region(event.x, event.y) in ("tree", "cell")
        self.row = row if row and on_row and self.movable(row) else None
        self.start, self.dragging, self.target = (event.x, event.y), False, ""

    def _motion(self, event: tk.Event) -> None:
        if self.row is None or not self.tree.exists(self.row):
            return
        if not self.dragging:
            if max(abs(event.x - self.start[0]), abs(event.y - self.start[1])) < DRAG_PIXELS:
                return
            self.dragging, self.origin = True, self.tree.get_children()
            self.tree.configure(cursor="fleur")
            self.tree.focus_set()  # for Escape
        target = self._row_at(event.y)
        if target and target != self.row:
            self.tree.move(self.row, "", self.tree.index(target))
            self.target = target
            self.tree.see(self.row)
            self.on_hover(self.row, target)

    def _row_at(self, y: int) -> str:
        """The movable row under ``y``. Above or below the rows on screen: the nearest one shown, and the list
        scrolls a line that way (the next move of the mouse goes further)."""
        rows = [row for row in self.tree.get_children() if self.movable(row)]
        if not rows:
            return ""
        row = self.tree.identify_row(y)
        if row in rows:
            return row
        if row:  # a row that stays put (the category list's "All shortcuts"): the first movable one after it
            index = self.tree.index(row)
            return next((r for r in rows if self.tree.index(r) > index), rows[-1])
        shown = [r for r in rows if self.tree.bbox(r)]
        if not shown:
            return ""
        if y < self.tree.bbox(shown[0])[1]:
            self.tree.yview_scroll(-1, "units")
            return shown[0]
        if y > self.tree.winfo_height():
            self.tree.yview_scroll(1, "units")
        return shown[-1]

    def _release(self, _event: tk.Event) -> None:
        row, dragging = self.row, self.dragging
        self.row, self.dragging = None, False
        if not dragging or row is None:
            return
        self.tree.configure(cursor="")
        if self.tree.exists(row) and self.target and self.tree.get_children() != self.origin:
            self.on_drop(row, self.target)

    def _escape(self, _event: tk.Event) -> str | None:
        if not self.dragging:
            return None
        self.row, self.dragging = None, False
        self.tree.configure(cursor="")
        for index, row in enumerate(r for r in self.origin if self.tree.exists(r)):
            self.tree.move(row, "", index)
        self.on_hover("", "")
        return "break"


def landing(moved: shortcuts_pb2.Shortcut, target: shortcuts_pb2.Shortcut, after: bool) -> tuple[int, int]:
    """The (category, position) ``MoveShortcut`` needs to put ``moved`` just after (or before) ``target``.

    Positions count within a category; taking a shortcut out of its own category first moves up the ones
    below it, hence the shift."""
    shift = 1 if target.category_id == moved.category_id and target.position > moved.position else 0
    return target.category_id, target.position + (1 if after else 0) - shift


class ShortcutsView(ttk.Frame):
    def __init__(
        self, parent: tk.Misc, controller: Controller, session: Session, on_error: Callable[[Exception, str], None]
    ) -> None:
        super().__init__(parent, padding=10)
        self.controller, self.session, self.on_error = controller, session, on_error
        self.categories: list[shortcuts_pb2.ShortcutCategory] = []
        self.shortcuts: list[shortcuts_pb2.Shortcut] = []
        self.editing: shortcuts_pb2.Shortcut | None = None
        self.renaming = 0
        self._search_after: str | None = None
        self._confirm: dict[str, str] = {}
        self.loads = 0
        self._build()
        self.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is not self:
            return
        for timer in [self._search_after, *self._confirm.values()]:
            if timer is not None:
                self.after_cancel(timer)
        self._search_after, self._confirm = None, {}

    # --- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        left = ttk.Frame(self, padding=(0, 0, 10, 0))
        left.pack(side="left", fill="y")
        ttk.Label(left, text="Categories", font=("TkDefaultFont", 11, "bold")).pack(anchor="w", pady=(0, 4))
        self.category_list = ttk.Treeview(left, columns=("count",), height=14, selectmode="browse", show="tree")
        self.category_list.column("#0", width=150)
        self.category_list.column("count", width=40, anchor="e")
        self.category_list.pack(fill="both", expand=True)
        self.category_list.bind("<<TreeviewSelect>>", lambda _e: self.load_shortcuts())
        self.category_drag = RowDrag(
            self.category_list, lambda row: row not in (ALL, UNCATEGORISED), self._category_dropped
        )
        moves = ttk.Frame(left)
        moves.pack(fill="x", pady=(4, 0))
        self.category_up = ttk.Button(moves, text="▲", width=3, command=lambda: self.move_category(-1))
        self.category_down = ttk.Button(moves, text="▼", width=3, command=lambda: self.move_category(1))
        self.category_up.configure(bootstyle="secondary-outline")
        self.category_down.configure(bootstyle="secondary-outline")
        self.category_up.pack(side="left")
        self.category_down.pack(side="left", padx=4)
        self.category_delete = ttk.Button(moves, text="Delete", command=self.delete_category, bootstyle="danger-link")
        self.category_delete.pack(side="right")
        self.category_rename = ttk.Button(moves, text="Rename", command=self.rename_category, bootstyle="link")
        self.category_rename.pack(side="right")
        new = ttk.Frame(left)
        new.pack(fill="x", pady=(8, 0))
        self.category_name = ttk.Entry(new, width=10)
        self.category_name.pack(side="left", fill="x", expand=True)
        self.category_name.bind("<Return>", lambda _e: self.save_category())
        self.category_button = ttk.Button(
            new, text="Add category", command=self.save_category, bootstyle="primary-outline"
        )
        self.category_button.pack(side="left", padx=(4, 0))

        right = ttk.Frame(self)
        right.pack(side="left", fill="both", expand=True)
        top = ttk.Frame(right)
        top.pack(fill="x", pady=(0, 6))
        self.open_button = ttk.Button(top, text="Open", command=self.open_selected, bootstyle="primary")
        self.open_button.pack(side="right")
        self.delete_button = ttk.Button(top, text="Delete", command=self.delete_selected, bootstyle="danger-link")
        self.delete_button.pack(side="right", padx=4)
        self.edit_button = ttk.Button(top, text="Edit", command=self.edit_selected, bootstyle="link")
        self.edit_button.pack(side="right")
        self.down_button = ttk.Button(top, text="▼", width=3, command=lambda: self.move_selected(1))
        self.up_button = ttk.Button(top, text="▲", width=3, command=lambda: self.move_selected(-1))
        self.down_button.configure(bootstyle="secondary-outline")
        self.up_button.configure(bootstyle="secondary-outline")
        self.down_button.pack(side="right", padx=4)
        self.up_button.pack(side="right")

        ttk.Label(top, text="Search", bootstyle="secondary").pack(side="left", padx=(0, 6))
        self.query = tk.StringVar()
        self.search = ttk.Entry(top, width=12, textvariable=self.query)
        self.search.pack(side="left", fill="x", expand=True, padx=(0, 10))
        self.query.trace_add("write", lambda *_: self._search_soon())
        # The form is packed from the bottom before the list, so a small window shrinks the list, never it.
        form = ttk.Labelframe(right, text="Add a shortcut", padding=10)
        form.pack(side="bottom", fill="x", pady=(8, 0))
        self.form = form
        form.columnconfigure(1, weight=1)
        self.fields: dict[str, ttk.Entry] = {}
        for row, label in enumerate(("Title", "Address", "Description")):
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
            entry = ttk.Entry(form)
            entry.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
            entry.bind("<Return>", lambda _e: self.save_shortcut())
            self.fields[label.lower()] = entry
        ttk.Label(form, text="Category").grid(row=3, column=0, sticky="w", padx=(0, 8), pady=2)
        self.category_choice = ttk.Combobox(form, state="readonly", width=24)
        self.category_choice.grid(row=3, column=1, sticky="w", pady=2)
        self.form_result = ttk.Label(form, text="", bootstyle="secondary")
        self.form_result.grid(row=4, column=1, sticky="w", pady=(4, 0))
        self.cancel_button = ttk.Button(form, text="Cancel", command=self.reset_form, bootstyle="secondary-link")
        self.cancel_button.grid(row=3, column=2, sticky="e")
        self.save_button = ttk.Button(form, text="Add", command=self.save_shortcut, bootstyle="primary", width=10)
        self.save_button.grid(row=3, column=3, sticky="e", padx=(6, 0))

        box = ttk.Frame(right)
        box.pack(fill="both", expand=True)
        self.list = ttk.Treeview(box, columns=("url", "category"), selectmode="browse", height=10)
        self.list.heading("#0", text="Title", anchor="w")
        self.list.heading("url", text="Address", anchor="w")
        self.list.heading("category", text="Category", anchor="w")
        self.list.column("#0", width=220)
        self.list.column("url", width=320)
        self.list.column("category", width=140)
        bar = ttk.Scrollbar(box, orient="vertical", command=self.list.yview)
        self.list.configure(yscrollcommand=bar.set)
        self.list.pack(side="left", fill="both", expand=True)
        bar.pack(side="left", fill="y")
        self.list.bind("<Double-1>", lambda _e: self.open_selected())
        self.list.bind("<Return>", lambda _e: self.open_selected())
        self.drag = RowDrag(self.list, lambda _row: True, self._shortcut_dropped, self._shortcut_hovered)
        self.empty = ttk.Label(right, text="", bootstyle="secondary")

    # --- loading -----------------------------------------------------------------------------------------

    def load(self) -> None:
        self.controller.run(
            lambda: backend.categories(self.session), self._got_categories, self._failed("load your categories")
        )

    def _failed(self, doing: str) -> Callable[[Exception], None]:
        return lambda error: self.on_error(error, doing)

    def _got_categories(self, categories: list[shortcuts_pb2.ShortcutCategory]) -> None:
        self.categories = categories
        chosen = self.category_list.selection()
        self.category_list.delete(*self.category_list.get_children())
        self.category_list.insert("", "end", iid=ALL, text=" All shortcuts")
        self.category_list.insert("", "end", iid=UNCATEGORISED, text=" Not in a category")
        for category in categories:
            self.category_list.insert(
                "", "end", iid=str(category.id), text=f" {category.name}", values=(category.shortcut_count,)
            )
        keep = chosen[0] if chosen and self.category_list.exists(chosen[0]) else ALL
        self.category_list.selection_set(keep)
        self.category_choice.configure(values=["(none)", *[c.name for c in categories]])
        if not self.category_choice.get():
            self.category_choice.set("(none)")
        self.load_shortcuts()

    def chosen_category(self) -> int | None:
        chosen = self.category_list.selection()
        if not chosen or chosen[0] == ALL:
            return None
        return 0 if chosen[0] == UNCATEGORISED else int(chosen[0])

    def load_shortcuts(self) -> None:
        category, query = self.chosen_category(), self.search.get().strip()
        if category:
            name = next((c.name for c in self.categories if c.id == category), "")
            if name and not self.editing:
                self.category_choice.set(name)

        def done(found: list[shortcuts_pb2.Shortcut]) -> None:
            if (self.chosen_category(), self.search.get().strip()) != (category, query):
                return  # the person has moved on: a newer load is coming
            self.shortcuts = found
            self._fill()
            self.loads += 1

        self.controller.run(
            lambda: backend.shortcuts(self.session, category, query), done, self._failed("load your shortcuts")
        )

    def _search_soon(self) -> None:
        if self._search_after is not None:
            self.after_cancel(self._search_after)
        self._search_after = self.after(SEARCH_DELAY_MS, self._search_now)

    def _search_now(self) -> None:
        self._search_after = None
        self.load_shortcuts()

    def _fill(self) -> None:
        chosen = self.list.selection()
        self.list.delete(*self.list.get_children())
        names = {c.id: c.name for c in self.categories}
        for shortcut in self.shortcuts:
            self.list.insert(
                "",
                "end",
                iid=str(shortcut.id),
                text=f" {shortcut.title}",
                values=(shortcut.url, names.get(shortcut.category_id, "")),
            )
        if chosen and self.list.exists(chosen[0]):
            self.list.selection_set(chosen[0])
        if not self.shortcuts:
            searching = self.search.get().strip()
            self.empty.configure(
                text=f"No shortcut matches “{searching}”." if searching else "No shortcuts here yet: add one below."
            )
            self.empty.place(in_=self.list, relx=0.5, rely=0.3, anchor="center")
        else:
            self.empty.place_forget()

    # --- shortcuts -----------------------------------------------------------------------------------------

    def selected(self) -> shortcuts_pb2.Shortcut | None:
        chosen = self.list.selection()
        if not chosen:
            return None
        return next((s for s in self.shortcuts if s.id == int(chosen[0])), None)

    def open_selected(self) -> None:
        shortcut = self.selected()
        if shortcut is not None:
            webbrowser.open(shortcut.url)

    def edit_selected(self) -> None:
        shortcut = self.selected()
        if shortcut is None:
            return
        self.editing = shortcut
        self.form.configure(text=f"Edit “{shortcut.title}”")
        self.save_button.configure(text="Save")
        for key, value in (("title", shortcut.title), ("address", shortcut.url), ("description", shortcut.description)):
            self.fields[key].delete(0, "end")
            self.fields[key].insert(0, value)
        self.category_choice.set(next((c.name for c in self.categories if c.id == shortcut.category_id), "(none)"))
        self.fields["title"].focus_set()

    def reset_form(self) -> None:
        self.editing = None
        self.form.configure(text="Add a shortcut")
        self.save_button.configure(text="Add")
        for entry in self.fields.values():
            entry.delete(0, "end")

    def save_shortcut(self) -> None:
        title, url = self.fields["title"].get().strip(), self.fields["address"].get().strip()
        if not title or not url:
            self.form_result.configure(text="A shortcut needs a title and an address.", bootstyle="danger")
            return
        if "://" not in url:
            url = "https://" + url
        category = next((c.id for c in self.categories if c.name == self.category_choice.get()), 0)
        shortcut = shortcuts_pb2.Shortcut(
            title=title, url=url, description=self.fields["description"].get().strip(), category_id=category
        )
        if self.editing is not None:
            shortcut.id = self.editing.id

        def done(saved: shortcuts_pb2.Shortcut) -> None:
            verb = "Saved" if shortcut.id else "Added"
            self.form_result.configure(text=f"{verb} “{saved.title}”.", bootstyle="success")
            self.reset_form()
            self.load()

        def failed(error: Exception) -> None:
            self.form_result.configure(text=str(error), bootstyle="danger")

        self.controller.run(lambda: backend.save_shortcut(self.session, shortcut), done, failed)

    def _confirmed(self, button: ttk.Button, key: str) -> bool:
        """Deleting takes two clicks: the first turns the button into "Confirm" for a few seconds."""
        if button.cget("text") != "Confirm":
            button.configure(text="Confirm")
            self._confirm[key] = self.after(CONFIRM_MS, lambda: button.configure(text="Delete"))
            return False
        self.after_cancel(self._confirm.pop(key))
        button.configure(text="Delete")
        return True

    def delete_selected(self) -> None:
        shortcut = self.selected()
        if shortcut is None or not self._confirmed(self.delete_button, "shortcut"):
            return
        self.controller.run(
            lambda: backend.delete_shortcut(self.session, shortcut.id),
            lambda _r: self.load(),
            self._failed("delete the shortcut"),
        )

    def move_selected(self, step: int) -> None:
        """Up or down within its category (positions are kept per category by the server)."""
        shortcut = self.selected()
        if shortcut is None:
            return
        self.controller.run(
            lambda: backend.move_shortcut(self.session, shortcut, shortcut.position + step),
            lambda _r: self.load_shortcuts(),
            self._failed("move the shortcut"),
        )

    def _shortcut(self, row: str) -> shortcuts_pb2.Shortcut | None:
        return next((s for s in self.shortcuts if str(s.id) == row), None)

    def _shortcut_hovered(self, row: str, target: str) -> None:
        """While dragging, the dragged row's Category column says where it would go ("" "": the drag was
        cancelled, every row shows its own again)."""
        names = {c.id: c.name for c in self.categories}
        if not row:
            for shortcut in self.shortcuts:
                if self.list.exists(str(shortcut.id)):
                    self.list.set(str(shortcut.id), "category", names.get(shortcut.category_id, ""))
            return
        over = self._shortcut(target)
        if over is not None:
            self.list.set(row, "category", names.get(over.category_id, ""))

    def _shortcut_dropped(self, row: str, target_row: str) -> None:
        """Dropped where ``target_row`` was: the server puts it there (renumbering in one transaction)."""
        moved, target = self._shortcut(row), self._shortcut(target_row)
        if moved is None or target is None:
            return
        after = self.list.index(row) > self.list.index(target_row)
        category, position = landing(moved, target, after)
        shortcut = shortcuts_pb2.Shortcut(id=moved.id, category_id=category)
        self.list.selection_set(row)

        def failed(error: Exception) -> None:
            self.on_error(error, "move the shortcut")
            self.load_shortcuts()  # back to the server's order

        self.controller.run(
            lambda: backend.move_shortcut(self.session, shortcut, position), lambda _r: self.load(), failed
        )

    # --- categories ----------------------------------------------------------------------------------------

    def _category_dropped(self, row: str, _target: str) -> None:
        """Categories are all listed (after "All shortcuts" and "Not in a category"): the row's index is its place."""
        category_id, position = int(row), self.category_list.index(row) - 2

        def failed(error: Exception) -> None:
            self.on_error(error, "move the category")
            self.load()

        self.controller.run(
            lambda: backend.move_category(self.session, category_id, position), lambda _r: self.load(), failed
        )

    def save_category(self) -> None:
        name = self.category_name.get().strip()
        if not name:
            return
        category_id = self.renaming

        def done(_category: shortcuts_pb2.ShortcutCategory) -> None:
            self.category_name.delete(0, "end")
            self.renaming = 0
            self.category_button.configure(text="Add category")
            self.load()

        self.controller.run(
            lambda: backend.save_category(self.session, category_id, name), done, self._failed("save the category")
        )

    def _chosen_real_category(self) -> shortcuts_pb2.ShortcutCategory | None:
        category = self.chosen_category()
        return next((c for c in self.categories if c.id == category), None) if category else None

    def rename_category(self) -> None:
        category = self._chosen_real_category()
        if category is None:
            return
        self.renaming = category.id
        self.category_name.delete(0, "end")
        self.category_name.insert(0, category.name)
        self.category_button.configure(text="Rename")
        self.category_name.focus_set()

    def move_category(self, step: int) -> None:
        category = self._chosen_real_category()
        if category is None:
            return
        self.controller.run(
            lambda: backend.move_category(self.session, category.id, category.position + step),
            lambda _r: self.load(),
            self._failed("move the category"),
        )

    def delete_category(self) -> None:
        category = self._chosen_real_category()
        if category is None or not self._confirmed(self.category_delete, "category"):
            return

        def done(_result: object) -> None:
            self.category_list.selection_set(ALL)
            self.load()

        self.controller.run(
            lambda: backend.delete_category(self.session, category.id), done, self._failed("delete the category")
        )
