"""A lot's traceability report as a PDF (fpdf2): what was received, when, and what became of every item.

Page 1 names the lot and gives its details and dates, then a summary by state and by type; the items table
follows, its header row repeated at the top of every page; every page ends with the generation time and
"Page n of N". All times are UTC.

The font is DejaVu Sans Condensed, bundled in ``fonts/`` (a Unicode TrueType font: names such as "Élodie",
"Zoë" or "Łukasz" render on every machine, fonts installed or not). Should the files be missing (a broken
install), the report still renders with PDF's built-in Helvetica, whose Latin-1 covers "Élodie" and "Zoë";
other characters then print as "?". ``render_lot_report`` is CPU work: the use case runs it on a thread.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TableBordersLayout
from fpdf.fonts import FontFace

from .lots import ItemState, ItemType, Lot, LotItem, LotStatus

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FILES = {"": "DejaVuSansCondensed.ttf", "B": "DejaVuSansCondensed-Bold.ttf"}
FAMILY = "DejaVu"
FALLBACK_FAMILY = "Helvetica"

STATE_LABELS = {ItemState.REFURBISHED: "Refurbished", ItemState.FOR_PARTS: "For parts", ItemState.SCRAPPED: "Scrapped"}
TYPE_LABELS = {
    ItemType.LAPTOP: "Laptop",
    ItemType.DESKTOP: "Desktop",
    ItemType.MONITOR: "Monitor",
    ItemType.OTHER: "Other",
}
UNPROCESSED = "Not processed"
#: The items table: (heading, width in mm); the widths fill the 186 mm between the margins.
COLUMNS = (
    ("#", 8),
    ("Serial number", 31),
    ("Type", 13),
    ("Brand", 22),
    ("Model", 27),
    ("State", 20),
    ("Technician", 24),
    ("OS", 24),
    ("Processed", 17),
)
MARGIN = 12
HEADING_FILL = (226, 232, 240)
STRIPE_FILL = (247, 249, 251)
MUTED = (100, 110, 120)
RULE = (190, 198, 206)


def _day(value: date | datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d")


def _minute(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


class _Report(FPDF):
    def __init__(self, lot: Lot, generated_at: datetime) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.lot = lot
        self.generated_at = generated_at
        self.family = self._load_fonts()
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=16)
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)
        self.set_title(f"Lot {lot.reference}: traceability report")
        self.set_creator("Workspace")
        self.set_creation_date(generated_at)

    def _load_fonts(self) -> str:
        if all((FONT_DIR / name).is_file() for name in FONT_FILES.values()):
            for style, name in FONT_FILES.items():
                self.add_font(FAMILY, style, str(FONT_DIR / name))
            return FAMILY
        return FALLBACK_FAMILY

    def text_of(self, value: str) -> str:
        """``value`` as the font can print it (only the built-in fallback font needs this)."""
        if self.family == FAMILY:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(self.family, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.text_of(f"Lot {self.lot.reference}: traceability report"), align="L")
        self.ln(7)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"Generated {_minute(self.generated_at)} by Workspace", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def section(self, title: str) -> None:
        self.ln(4)
        self.set_font(self.family, "B", 11)
        self.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        self.set_font(self.family, "", 9)


def _details(pdf: _Report, lot: Lot) -> None:
    status = "Finished" if lot.status is LotStatus.FINISHED else "Open"
    rows = [
        ("Reference", lot.reference),
        ("Supplier / origin", lot.supplier),
        ("Recovered (collected)", _day(lot.recovered_date) or "not recorded"),
        ("Received", _day(lot.received_date)),
        ("Status", f"{status}: {lot.processed_count} of {lot.item_count} items processed"),
        ("Finished", _minute(lot.finished_at) or "not yet"),
        ("Created by", f"{lot.creator_username}, {_minute(lot.created_at)}"),
        ("Note", lot.note or "none"),
    ]
    pdf.set_font(pdf.family, "", 9)
    with pdf.table(
        col_widths=(40, 146),
        first_row_as_headings=False,
        text_align="LEFT",
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        line_height=5,
        padding=(0.8, 2, 0.8, 2),
    ) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=FontFace(emphasis="BOLD"))
            row.cell(pdf.text_of(value))


def _summary(pdf: _Report, lot: Lot, items: list[LotItem]) -> None:
    states = Counter(item.state for item in items)
    types = Counter(item.type for item in items)
    by_state = [(STATE_LABELS[s], states[s]) for s in ItemState] + [(UNPROCESSED, states[None])]
    by_type = [(TYPE_LABELS[t], types[t]) for t in ItemType]
    by_type += [("", None)] * (len(by_state) - len(by_type))
    heading = FontFace(emphasis="BOLD", fill_color=HEADING_FILL)
    with pdf.table(
        col_widths=(45, 18, 20, 45, 18),
        text_align=("LEFT", "RIGHT", "LEFT", "LEFT", "RIGHT"),
        headings_style=heading,
        borders_layout=TableBordersLayout.NONE,
        line_height=5,
        padding=(0.6, 2, 0.6, 2),
        width=146,
        align="LEFT",
    ) as table:
        table.row(["By state", "Items", "", "By type", "Items"])
        for (state, count), (kind, kind_count) in zip(by_state, by_type, strict=True):
            table.row([state, str(count), "", kind, "" if kind_count is None else str(kind_count)])
        total = table.row()
        for text in ("Total", str(len(items)), "", "Total", str(len(items))):
            total.cell(text, style=FontFace(emphasis="BOLD"))


def _items(pdf: _Report, items: list[LotItem]) -> None:
    pdf.set_font(pdf.family, "", 7.5)
    with pdf.table(
        col_widths=tuple(width for _, width in COLUMNS),
        headings_style=FontFace(emphasis="BOLD", fill_color=HEADING_FILL),
        cell_fill_color=STRIPE_FILL,
        cell_fill_mode="ROWS",
        borders_layout=TableBordersLayout.SINGLE_TOP_LINE,
        text_align="LEFT",
        line_height=4,
        padding=(0.6, 1, 0.6, 1),
        repeat_headings=1,
        width=186,
    ) as table:
        table.row([heading for heading, _ in COLUMNS])
        for number, item in enumerate(items, start=1):
            table.row(
                [
                    str(number),
                    pdf.text_of(item.serial_number),
                    TYPE_LABELS[item.type],
                    pdf.text_of(item.brand),
                    pdf.text_of(item.model),
                    STATE_LABELS[item.state] if item.state is not None else UNPROCESSED,
                    pdf.text_of(item.technician or ""),
                    pdf.text_of(item.operating_system or ""),
                    _day(item.inventoried_at),
                ]
            )


def render_lot_report(lot: Lot, items: list[LotItem], generated_at: datetime) -> bytes:
    """The report of ``lot`` and its ``items`` (in the order they were added), as PDF bytes."""
    pdf = _Report(lot, generated_at)
    pdf.add_page()
    pdf.set_font(pdf.family, "", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 5, "Lot traceability report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(pdf.family, "B", 18)
    pdf.multi_cell(0, 9, pdf.text_of(f"Lot {lot.reference}"), new_x="LMARGIN", new_y="NEXT")
    pdf.section("Details")
    _details(pdf, lot)
    pdf.section("Summary")
    _summary(pdf, lot, items)
    pdf.section(f"Items ({len(items)})")
    if items:
        _items(pdf, items)
    else:
        pdf.cell(0, 6, "This lot holds no item yet.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
