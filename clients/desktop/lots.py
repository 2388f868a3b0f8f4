"""Lots: deliveries of used equipment, listed item by item with a scanner and inventoried; the PDF report.

The scan field keeps the focus: a barcode scanner types the serial number and Enter, the item is added at once
(``AddItems`` with ``ENTRY_METHOD_SCAN``) and the field is ready for the next one. Scans are sent one after the
other, in the order they were read.

While the server does not answer, scans wait (at most ``MAX_WAITING``), shown as waiting rows, and are kept in
a file of the client config folder, so closing the app loses none: they go, in order, once the connection is
back (the main window says so, or a retry with back-off finds it), this run or the next. A scan whose answer
was lost may have landed: if its retry is refused because this very lot has the serial, it counts as added.
"""

from __future__ import annotations

import json
import logging
import re
import tkinter as tk
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from tkinter import filedialog

import grpc
import ttkbootstrap as ttk
from google.type import date_pb2
from workspace.v1 import lots_pb2
from workspace_client import CallFailed, NotSignedIn, Session, Unreachable
from workspace_client.tk_bridge import Controller
from workspace_client.tokens import config_dir

from . import backend

TYPES = {
    "Laptop": lots_pb2.ITEM_TYPE_LAPTOP,
    "Desktop": lots_pb2.ITEM_TYPE_DESKTOP,
    "Monitor": lots_pb2.ITEM_TYPE_MONITOR,
    "Other": lots_pb2.ITEM_TYPE_OTHER,
}
STATES = {
    "Refurbished": lots_pb2.ITEM_STATE_REFURBISHED,
    "For parts": lots_pb2.ITEM_STATE_FOR_PARTS,
    "Scrapped": lots_pb2.ITEM_STATE_SCRAPPED,
}
STATUS_FILTER = {"Any status": lots_pb2.LOT_STATUS_UNSPECIFIED, "Open": lots_pb2.LOT_STATUS_OPEN}
STATUS_FILTER["Finished"] = lots_pb2.LOT_STATUS_FINISHED
#: Completion is asked for this long after the last key, ms.
COMPLETE_DELAY_MS = 250
#: At most this many scans wait for the server; the next ones are refused (with a sentence) until some are sent.
MAX_WAITING = 1000
#: While the server does not answer, the waiting scans are tried again after this long, doubled up to the cap, ms.
RETRY_FIRST_MS, RETRY_MAX_MS = 1000, 30_000

log = logging.getLogger("desktop.lots")


@dataclass
class Scan:
    """A serial number read (or typed) for a lot, with the type, brand and model chosen when it was read."""

    lot_id: int
    serial: str
    scanned: bool
    item_type: int
    brand: str
    model: str
    #: A try whose answer never came (the server unreachable): it may have landed.
    tried: bool = False
    #: It waited for the server (shown so): its outcome, refused or added, is shown on its row too.
    waited: bool = False
    #: Its row in the item list while it waits (``scan-N``), unique in this run.
    row: str = ""


def waiting_file(session: Session) -> Path:
    """Where this person's waiting scans for this server are kept between runs."""
    assert session.user is not None
    server = re.sub(r"[^A-Za-z0-9.-]+", "_", session.address)
    return config_dir() / f"desktop-scans-{session.user.id}-{server}.json"


def day(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}" if value.year else ""


def progress(lot: lots_pb2.Lot) -> str:
    if lot.status == lots_pb2.LOT_STATUS_FINISHED:
        return f"Finished ({lot.item_count})"
    return f"Open: {lot.processed_count}/{lot.item_count}"


class LotsView(ttk.Frame):
    def __init__(
        self, parent: tk.Misc, controller: Controller, session: Session, on_error: Callable[[Exception, str], None]
    ) -> None:
        super().__init__(parent, padding=10)
        self.controller, self.session, self.on_error = controller, session, on_error
        assert session.user is not None
        self.technician_name = session.user.display_name or session.user.username
        self.lots: dict[int, lots_pb2.Lot] = {}
        self.items: dict[int, lots_pb2.LotItem] = {}
        self.open_id = 0
        #: Scans to send, in the order they were read (whatever their lot); the first one is sent first.
        self.scans: list[Scan] = []
        #: The first scan is on its way.
        self.scanning = False
        #: The server did not answer the last try: the scans wait for the connection (or the next retry).
        self.offline = False
        self.retry_ms = RETRY_FIRST_MS
        self._rows = 0
        #: The waiting scans are in the file (see ``waiting_file``).
        self._kept = False
        #: Why the open lot's refused waiting scans were refused, by row: selecting the row shows it.
        self.refusals: dict[str, str] = {}
        self.loads = 0
        self._after: dict[str, str] = {}
        self._build()
        self._restore_waiting()
        self.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is not self:
            return
        for timer in self._after.values():
            self.after_cancel(timer)
        self._after = {}

    # --- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        left = ttk.Frame(self, padding=(0, 0, 10, 0))
        left.pack(side="left", fill="y")
        filters = ttk.Frame(left)
        filters.pack(fill="x", pady=(0, 6))
        self.query = tk.StringVar()
        ttk.Label(filters, text="Find", bootstyle="secondary").pack(side="left", padx=(0, 6))
        ttk.Entry(filters, textvariable=self.query, width=12).pack(side="left", fill="x", expand=True)
        self.status_filter = ttk.Combobox(filters, values=list(STATUS_FILTER), state="readonly", width=10)
        self.status_filter.set("Any status")
        self.status_filter.pack(side="left", padx=(6, 0))
        self.query.trace_add("write", lambda *_: self._soon("lots", self.load))
        self.status_filter.bind("<<ComboboxSelected>>", lambda _e: self.load())

        form = ttk.Labelframe(left, text="New lot", padding=8)
        form.pack(side="bottom", fill="x", pady=(8, 0))
        form.columnconfigure(1, weight=1)
        self.new_lot: dict[str, ttk.Entry] = {}
        for row, label in enumerate(("Reference", "Supplier", "Received", "Note")):
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
            entry = ttk.Entry(form)
            entry.grid(row=row, column=1, sticky="ew", pady=2)
            self.new_lot[label.lower()] = entry
        self.new_lot["received"].insert(0, date.today().isoformat())
        self.create_button = ttk.Button(form, text="Create lot", command=self.create_lot, bootstyle="primary")
        self.create_button.grid(row=4, column=1, sticky="e", pady=(4, 0))
        self.create_result = ttk.Label(form, text="", bootstyle="secondary", wraplength=300)
        self.create_result.grid(row=5, column=0, columnspan=2, sticky="w")

        box = ttk.Frame(left)
        box.pack(fill="both", expand=True)
        self.lot_list = ttk.Treeview(box, columns=("supplier", "received", "status"), selectmode="browse", height=12)
        for column, title, width in (
            ("#0", "Lot", 100),
            ("supplier", "Supplier", 80),
            ("received", "Received", 84),
            ("status", "Status", 92),
        ):
            self.lot_list.heading(column, text=title, anchor="w")
            self.lot_list.column(column, width=width, stretch=column == "supplier")
        self.lot_list.tag_configure("finished", foreground="#2fb344")
        self.lot_list.pack(fill="both", expand=True)
        self.lot_list.bind("<<TreeviewSelect>>", lambda _e: self._lot_selected())

        right = ttk.Frame(self)
        right.pack(side="left", fill="both", expand=True)
        head = ttk.Frame(right)
        head.pack(fill="x")
        self.report_button = ttk.Button(
            head, text="Save report (PDF)…", command=self.ask_report_path, bootstyle="secondary-outline"
        )
        self.report_button.pack(side="right")
        self.title = ttk.Label(head, text="Choose or create a lot", font=("TkDefaultFont", 13, "bold"))
        self.title.pack(side="left")
        self.status = ttk.Label(right, text="", bootstyle="secondary")
        self.status.pack(anchor="w", pady=(0, 6))

        # Bottom rows first: a small window shrinks the item list, never the scan field.
        inventory = ttk.Labelframe(right, text="Inventory the selected items", padding=8)
        inventory.pack(side="bottom", fill="x", pady=(8, 0))
        fields = ttk.Frame(inventory)
        fields.pack(fill="x", expand=True)
        ttk.Label(fields, text="State").grid(row=0, column=0, sticky="w")
        self.state_choice = ttk.Combobox(fields, values=list(STATES), state="readonly", width=11)
        self.state_choice.set("Refurbished")
        self.state_choice.grid(row=0, column=1, sticky="w", padx=(4, 10))
        ttk.Label(fields, text="Technician").grid(row=0, column=2, sticky="w")
        self.technician = ttk.Entry(fields, width=12)
        self.technician.insert(0, self.technician_name)
        self.technician.grid(row=0, column=3, sticky="ew", padx=(4, 0))
        ttk.Label(fields, text="OS").grid(row=1, column=0, sticky="w", pady=(4, 0))
        self.operating_system = ttk.Entry(fields, width=12)
        self.operating_system.grid(row=1, column=1, sticky="ew", padx=(4, 10), pady=(4, 0))
        self.inventory_button = ttk.Button(
            fields, text="Record", command=self.inventory_selected, bootstyle="primary", width=10
        )
        self.inventory_button.grid(row=1, column=3, sticky="e", pady=(4, 0))
        fields.columnconfigure(3, weight=1)

        scan = ttk.Labelframe(right, text="Add items: scan, or type the serial number", padding=8)
        scan.pack(side="bottom", fill="x", pady=(8, 0))
        what = ttk.Frame(scan)
        what.pack(fill="x")
        ttk.Label(what, text="Type").pack(side="left")
        self.type_choice = ttk.Combobox(what, values=list(TYPES), state="readonly", width=10)
        self.type_choice.set("Laptop")
        self.type_choice.pack(side="left", padx=(4, 12))
        ttk.Label(what, text="Brand").pack(side="left")
        self.brand = ttk.Combobox(what, width=16)
        self.brand.pack(side="left", padx=(4, 12))
        ttk.Label(what, text="Model").pack(side="left")
        self.model = ttk.Combobox(what, width=18)
        self.model.pack(side="left", padx=(4, 0))
        self.brand.bind("<KeyRelease>", lambda _e: self._soon("brands", self.complete_brands))
        self.model.bind("<KeyRelease>", lambda _e: self._soon("models", self.complete_models))
        self.brand.bind("<FocusIn>", lambda _e: self.complete_brands())
        self.model.bind("<FocusIn>", lambda _e: self.complete_models())
        serial = ttk.Frame(scan)
        serial.pack(fill="x", pady=(6, 0))
        ttk.Label(serial, text="Serial").pack(side="left")
        self.manual_button = ttk.Button(
            serial, text="Add by hand", command=lambda: self.add_serial(scanned=False), bootstyle="secondary-outline"
        )
        self.manual_button.pack(side="right")
        self.scan = ttk.Entry(serial, font=("TkFixedFont", 12))
        self.scan.pack(side="left", fill="x", expand=True, padx=(4, 10))
        self.scan.bind("<Return>", lambda _e: self.add_serial(scanned=True))
        self.scan_result = ttk.Label(scan, text="", bootstyle="secondary")
        self.scan_result.pack(anchor="w", pady=(4, 0))
        #: "3 scans waiting to be sent", shown only while some wait for the server.
        self.waiting = ttk.Label(scan, text="", bootstyle="warning", font=("TkDefaultFont", 9, "bold"))

        box = ttk.Frame(right)
        box.pack(fill="both", expand=True)
        columns = ("type", "brand", "model", "state", "technician", "os")
        self.item_list = ttk.Treeview(box, columns=columns, selectmode="extended", height=10)
        for column, title, width in (
            ("#0", "Serial number", 150),
            ("type", "Type", 80),
            ("brand", "Brand", 100),
            ("model", "Model", 110),
            ("state", "State", 100),
            ("technician", "Technician", 110),
            ("os", "OS", 100),
        ):
            self.item_list.heading(column, text=title, anchor="w")
            self.item_list.column(column, width=width, stretch=True)
        bar = ttk.Scrollbar(box, orient="vertical", command=self.item_list.yview)
        self.item_list.configure(yscrollcommand=bar.set)
        self.item_list.pack(side="left", fill="both", expand=True)
        bar.pack(side="left", fill="y")
        colours = ttk.Style().colors
        self.item_list.tag_configure("waiting", foreground=colours.secondary)
        self.item_list.tag_configure("refused", foreground=colours.danger)
        self.item_list.bind("<<TreeviewSelect>>", lambda _e: self._explain_refusal())
        self._enable()

    def _soon(self, key: str, action: Callable[[], None], delay: int = COMPLETE_DELAY_MS) -> None:
        if key in self._after:
            self.after_cancel(self._after.pop(key))

        def run() -> None:
            self._after.pop(key, None)
            action()

        self._after[key] = self.after(delay, run)

    def _failed(self, doing: str) -> Callable[[Exception], None]:
        return lambda error: self.on_error(error, doing)

    def _enable(self) -> None:
        state = "normal" if self.open_id else "disabled"
        for widget in (self.scan, self.manual_button, self.inventory_button, self.report_button):
            widget.configure(state=state)

    # --- lots ----------------------------------------------------------------------------------------------

    def load(self) -> None:
        query, status = self.query.get().strip(), STATUS_FILTER[self.status_filter.get()]

        def done(found: list[lots_pb2.Lot]) -> None:
            self.lot_list.delete(*self.lot_list.get_children())
            self.lots = {}
            for lot in found:
                self._show_lot(lot)
            if self.open_id and self.lot_list.exists(str(self.open_id)):
                self.lot_list.selection_set(str(self.open_id))
            self.loads += 1
            self._next_scan()  # scans kept from the last run go once the server answers

        self.controller.run(lambda: backend.lots(self.session, query, status), done, self._failed("load the lots"))

    def _show_lot(self, lot: lots_pb2.Lot) -> None:
        self.lots[lot.id] = lot
        values = (lot.supplier, day(lot.received_date), progress(lot))
        tags = ("finished",) if lot.status == lots_pb2.LOT_STATUS_FINISHED else ()
        if self.lot_list.exists(str(lot.id)):
            self.lot_list.item(str(lot.id), text=lot.reference, values=values, tags=tags)
        else:
            self.lot_list.insert("", 0, iid=str(lot.id), text=lot.reference, values=values, tags=tags)
        if lot.id == self.open_id:
            self._show_header(lot)

    def _show_header(self, lot: lots_pb2.Lot) -> None:
        self.title.configure(text=f"{lot.reference}  ·  {lot.supplier}")
        received = f"received {day(lot.received_date)}"
        if lot.status == lots_pb2.LOT_STATUS_FINISHED:
            finished = date.fromtimestamp(lot.finish_time.seconds).isoformat()
            text = (
                f"Finished on {finished}: {lot.refurbished_count} refurbished, {lot.for_parts_count} for parts, "
                f"{lot.scrapped_count} scrapped ({received})"
            )
            self.status.configure(text=text, bootstyle="success")
        else:
            left = lot.item_count - lot.processed_count
            text = f"Open: {lot.processed_count} of {lot.item_count} processed, {left} to go ({received})"
            self.status.configure(text=text, bootstyle="secondary")

    def create_lot(self) -> None:
        fields = {key: entry.get().strip() for key, entry in self.new_lot.items()}
        try:
            received = date.fromisoformat(fields["received"])
        except ValueError:
            self.create_result.configure(text="The received date is YYYY-MM-DD, e.g. 2026-03-31.", bootstyle="danger")
            return
        if not fields["reference"] or not fields["supplier"]:
            self.create_result.configure(text="A lot needs a reference and a supplier.", bootstyle="danger")
            return

        def done(lot: lots_pb2.Lot) -> None:
            self.create_result.configure(text=f"Created {lot.reference}.", bootstyle="success")
            for key in ("reference", "supplier", "note"):
                self.new_lot[key].delete(0, "end")
            self._show_lot(lot)
            self.lot_list.selection_set(str(lot.id))

        def failed(error: Exception) -> None:
            self.create_result.configure(text=str(error), bootstyle="danger")

        self.controller.run(
            lambda: backend.create_lot(self.session, fields["reference"], fields["supplier"], received, fields["note"]),
            done,
            failed,
        )

    def _lot_selected(self) -> None:
        chosen = self.lot_list.selection()
        if chosen and int(chosen[0]) != self.open_id:
            self.open(int(chosen[0]))

    def open(self, lot_id: int) -> None:
        self.open_id = lot_id
        self.items = {}
        self.refusals = {}
        self.item_list.delete(*self.item_list.get_children())
        self.scan_result.configure(text="")
        if lot_id in self.lots:
            self._show_header(self.lots[lot_id])
        self._enable()
        self._show_waiting()

        def done(found: list[lots_pb2.LotItem]) -> None:
            if self.open_id == lot_id:
                for item in found:
                    self._show_item(item)
                self._show_waiting()  # the waiting ones after the items the lot has

        self.controller.run(lambda: backend.items(self.session, lot_id), done, self._failed("load the items"))
        self.scan.focus_set()

    def _show_item(self, item: lots_pb2.LotItem, instead_of: str = "") -> None:
        """Shows (or updates) an item; ``instead_of``: the waiting row it replaces, at that row's place."""
        self.items[item.id] = item
        state = next((k for k, v in STATES.items() if v == item.state), "")
        kind = next((k for k, v in TYPES.items() if v == item.type), "")
        values = (kind, item.brand, item.model, state or "to do", item.technician, item.operating_system)
        if self.item_list.exists(str(item.id)):
            self.item_list.item(str(item.id), text=item.serial_number, values=values)
        else:
            at = self.item_list.index(instead_of) if instead_of and self.item_list.exists(instead_of) else "end"
            self.item_list.insert("", at, iid=str(item.id), text=item.serial_number, values=values)
            self.item_list.see(str(item.id))
        if instead_of and self.item_list.exists(instead_of):
            self.item_list.delete(instead_of)

    # --- scanning ------------------------------------------------------------------------------------------

    def add_serial(self, scanned: bool) -> None:
        serial = self.scan.get().strip()
        self.scan.delete(0, "end")
        self.scan.focus_set()
        if not serial or not self.open_id:
            return
        if len(self.scans) >= MAX_WAITING:
            text = f"Not kept: {serial}: {MAX_WAITING:,} scans already wait for the server; scan it again later."
            self.scan_result.configure(text=text, bootstyle="danger")
            return
        self._rows += 1
        item_type = TYPES[self.type_choice.get()]
        brand, model = self.brand.get().strip(), self.model.get().strip()
        self.scans.append(Scan(self.open_id, serial, scanned, item_type, brand, model, row=f"scan-{self._rows}"))
        if self.offline:
            self._save_waiting()
        self._show_waiting()
        self._next_scan()

    def _next_scan(self) -> None:
        """Sends the first scan; the others wait their turn (and all of them wait while the server is away)."""
        if self.scanning or self.offline or not self.scans:
            return
        scan = self.scans[0]
        self.scanning = True

        def work() -> tuple[lots_pb2.AddItemsResponse, bool]:
            try:
                reply = backend.add_item(
                    self.session, scan.lot_id, scan.serial, scan.item_type, scan.brand, scan.model, scan.scanned
                )
                return reply, False
            except CallFailed as error:
                # A try whose answer was lost may have landed: this lot having the serial means it did.
                if not scan.tried or error.code != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                item = backend.item_by_serial(self.session, scan.lot_id, scan.serial)
                if item is None:
                    raise
                return lots_pb2.AddItemsResponse(items=[item], lot=backend.lot(self.session, scan.lot_id)), True

        def done(result: tuple[lots_pb2.AddItemsResponse, bool]) -> None:
            reply, landed_before = result
            self.scanning, self.offline, self.retry_ms = False, False, RETRY_FIRST_MS
            self._forget(scan)
            self._show_lot(reply.lot)
            if self.open_id == scan.lot_id:
                for item in reply.items:
                    self._show_item(item, instead_of=scan.row)
            if not scan.waited or not self.scan_result.cget("text").startswith("Not added"):
                # (a refusal met while sending the waiting ones stays on screen)
                note = " (it had reached the server before the connection broke)" if landed_before else ""
                self.scan_result.configure(text=f"Added {scan.serial}{note}.", bootstyle="success")
            self._next_scan()

        def failed(error: Exception) -> None:
            self.scanning = False
            if isinstance(error, Unreachable):
                scan.tried, self.offline = True, True
                self._soon("retry", self._retry, self.retry_ms)
                self.retry_ms = min(self.retry_ms * 2, RETRY_MAX_MS)
                self._save_waiting()
                self._show_waiting()
                return
            if isinstance(error, NotSignedIn):  # kept in the file: it goes after the next login
                scan.tried = True
                self._save_waiting()
                self.on_error(error, f"add {scan.serial}")
                return
            self._forget(scan)
            reason = error.details if isinstance(error, CallFailed) else str(error)
            lot = self.lots.get(scan.lot_id)
            where = f" to {lot.reference}" if lot is not None and scan.lot_id != self.open_id else ""
            self.scan_result.configure(text=f"Not added{where}: {scan.serial}: {reason}", bootstyle="danger")
            if self.open_id == scan.lot_id and scan.waited:  # it was shown waiting: now shown refused, in place
                kind = next((k for k, v in TYPES.items() if v == scan.item_type), "")
                row = self.item_list.insert(
                    "",
                    self.item_list.index(scan.row) if self.item_list.exists(scan.row) else "end",
                    text=scan.serial,
                    values=(kind, scan.brand, scan.model, "not added", "", ""),
                    tags=("refused",),
                )
                self.refusals[row] = f"Not added: {scan.serial}: {reason}"
                self.item_list.delete(scan.row)
            elif self.item_list.exists(scan.row):
                self.item_list.delete(scan.row)
            self._next_scan()

        self.controller.run(work, done, failed)

    def _explain_refusal(self) -> None:
        chosen = self.item_list.selection()
        if len(chosen) == 1 and chosen[0] in self.refusals:
            self.scan_result.configure(text=self.refusals[chosen[0]], bootstyle="danger")

    def _forget(self, scan: Scan) -> None:
        """The scan has its answer: out of the queue (and the file)."""
        self.scans = [s for s in self.scans if s is not scan]
        self._save_waiting()
        self._show_waiting()

    def _retry(self) -> None:
        self.offline = False
        self._next_scan()

    def connection_back(self) -> None:
        """The main window's stream is connected again: the waiting scans go now, not at the next retry."""
        if self.offline:
            if "retry" in self._after:
                self.after_cancel(self._after.pop("retry"))
            self.retry_ms = RETRY_FIRST_MS
            self._retry()

    def _show_waiting(self) -> None:
        """The open lot's waiting scans as rows after its items, and how many wait, while the server is away."""
        kind = {v: k for k, v in TYPES.items()}
        state = "waiting" if self.offline else "sending…"
        for scan in self.scans:
            scan.waited = scan.waited or self.offline
            if scan.lot_id != self.open_id:
                continue
            values = (kind.get(scan.item_type, ""), scan.brand, scan.model, state, "", "")
            if self.item_list.exists(scan.row):
                self.item_list.item(scan.row, values=values)
                self.item_list.move(scan.row, "", "end")
            else:
                self.item_list.insert("", "end", iid=scan.row, text=scan.serial, values=values, tags=("waiting",))
                self.item_list.see(scan.row)
        here = sum(1 for scan in self.scans if scan.lot_id == self.open_id)
        elsewhere = len(self.scans) - here
        if not self.offline or not self.scans:
            self.waiting.pack_forget()
            return
        text = f"{here} scan{'s' if here != 1 else ''} waiting to be sent"
        if elsewhere:
            text += f" (and {elsewhere} for other lots)"
        text += ": the server does not answer; they go, in order, as soon as it does."
        self.waiting.configure(text=text)
        if not self.waiting.winfo_manager():
            self.waiting.pack(anchor="w", pady=(4, 0), before=self.scan_result)

    def _save_waiting(self) -> None:
        """Keeps the waiting scans in a file (removed once none wait): closing the app loses none."""
        path = waiting_file(self.session)
        try:
            if not self.scans or not (self.offline or any(scan.tried for scan in self.scans)):
                if self._kept:
                    path.unlink(missing_ok=True)
                    self._kept = False
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            scans = [{k: v for k, v in asdict(scan).items() if k != "row"} for scan in self.scans]
            path.write_text(json.dumps({"scans": scans}, indent=1) + "\n")
            self._kept = True
        except OSError as error:  # the scans still wait in memory; say so, they are not lost yet
            self.on_error(error, "keep the waiting scans in a file")

    def _restore_waiting(self) -> None:
        """The scans a previous run could not send: they may have landed (the app closed during a try)."""
        path = waiting_file(self.session)
        try:
            saved = json.loads(path.read_text()).get("scans", [])
            self._kept = True
            for fields in saved[:MAX_WAITING]:
                self._rows += 1
                self.scans.append(Scan(**{**fields, "tried": True, "waited": True, "row": f"scan-{self._rows}"}))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning("the waiting scans in %s could not be read: %s", path, error)

    def complete_brands(self) -> None:
        prefix = self.brand.get().strip()
        self.controller.run(
            lambda: backend.brands(self.session, prefix), lambda found: self.brand.configure(values=found)
        )

    def complete_models(self) -> None:
        brand, prefix = self.brand.get().strip(), self.model.get().strip()
        self.controller.run(
            lambda: backend.models(self.session, brand, prefix), lambda found: self.model.configure(values=found)
        )

    # --- inventory and report ------------------------------------------------------------------------------

    def inventory_selected(self) -> None:
        chosen = [int(i) for i in self.item_list.selection() if i.isdigit()]  # not the waiting rows
        technician, system = self.technician.get().strip(), self.operating_system.get().strip()
        if not chosen:
            self.scan_result.configure(text="Select the items to inventory in the list.", bootstyle="danger")
            return
        state = STATES[self.state_choice.get()]

        def work() -> list[lots_pb2.InventoryItemResponse]:  # one after the other: the last reply has the lot's counts
            return [backend.inventory(self.session, item_id, state, technician, system) for item_id in chosen]

        def done(replies: list[lots_pb2.InventoryItemResponse]) -> None:
            for reply in replies:
                self._show_item(reply.item)
            self._show_lot(replies[-1].lot)
            self.scan_result.configure(text=f"Recorded {len(replies)} item(s).", bootstyle="success")

        self.controller.run(work, done, self._failed("record the inventory"))

    def ask_report_path(self) -> None:
        lot = self.lots.get(self.open_id)
        if lot is None:
            return
        path = filedialog.asksaveasfilename(
            parent=self,
            title="Save the lot's report",
            defaultextension=".pdf",
            initialfile=f"{lot.reference}.pdf",
            filetypes=[("PDF", "*.pdf")],
        )
        if path:
            self.save_report(path)

    def save_report(self, path: str) -> None:
        lot_id = self.open_id

        def done(size: int) -> None:
            self.scan_result.configure(text=f"Report saved to {path} ({size // 1024 + 1} KB).", bootstyle="success")

        self.scan_result.configure(text="Saving the report…", bootstyle="secondary")
        self.controller.run(
            lambda: backend.save_report(self.session, lot_id, path), done, self._failed("save the report")
        )
