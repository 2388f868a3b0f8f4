"""Goods-receiving lots: deliveries of used equipment, their items, and each item's inventory.

Lots are company records: every signed-in person reads them and works on them (creates, edits, adds and
inventories items). Deleting is narrower: a lot by its creator or an administrator, and only when empty; an
item by the lot's creator, the person who added it, or an administrator.

A lot's status is derived from its items and stored with them: after every change to its items (added,
changed, deleted, inventoried) the same transaction recounts them (``LotRepository.recount``). ``OPEN`` while
an item has no state (an empty lot is open); ``FINISHED`` once every item has one, ``finished_at`` being the
moment that happened (a later correction leaves it). Adding an item reopens the lot and clears it. Every
writing unit of work here first locks the lot (``LotRepository.lock``), so two changes to one lot's items run
one after the other and each recount sees the other's result.

Serial numbers are unique across all lots without regard to case or surrounding spaces: the storage's unique
index on the case-folded serial is the truth (two lots adding one serial at once: one wins), and the use cases
look the holders up first so that every clash is reported with the lot that has it. Before that they lock the
serials they are about to insert (``LotItemRepository.lock_serials``, in one order), so that two batches sharing
serials queue instead of deadlocking in the index, and the second one names the first one's lot.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from .activity import record_activity
from .errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound, PermissionDenied, Validator
from .model import Principal
from .ports import Clock, UnitOfWork, UnitOfWorkFactory

REFERENCE_MAX = 64
SUPPLIER_MAX = 200
NOTE_MAX = 2000
SERIAL_MAX = 100
BRAND_MAX = 100
MODEL_MAX = 100
TECHNICIAN_MAX = 100
OPERATING_SYSTEM_MAX = 100
QUERY_MAX = 100
#: Items one ``AddItems`` call may carry (a scanner session); more is refused, not split.
ADD_ITEMS_MAX = 1000
#: Completion suggestions: the default and the most one call returns.
SUGGESTIONS_DEFAULT = 10
SUGGESTIONS_MAX = 50

LOT_UPDATABLE_FIELDS = frozenset({"reference", "supplier", "received_date", "recovered_date", "note"})
ITEM_UPDATABLE_FIELDS = frozenset({"serial_number", "type", "brand", "model"})


class LotStatus(StrEnum):
    OPEN = "OPEN"
    FINISHED = "FINISHED"


class ItemType(StrEnum):
    LAPTOP = "LAPTOP"
    DESKTOP = "DESKTOP"
    MONITOR = "MONITOR"
    OTHER = "OTHER"


class EntryMethod(StrEnum):
    SCAN = "SCAN"
    MANUAL = "MANUAL"


class ItemState(StrEnum):
    REFURBISHED = "REFURBISHED"
    FOR_PARTS = "FOR_PARTS"
    SCRAPPED = "SCRAPPED"


@dataclass(frozen=True)
class Lot:
    id: int
    reference: str
    supplier: str
    received_date: date
    recovered_date: date | None
    note: str
    #: None once the account is deleted
    creator_id: int | None
    creator_username: str
    created_at: datetime
    #: the lot's details or one of its items last changed
    updated_at: datetime
    status: LotStatus
    #: when its last unprocessed item was processed; None while open
    finished_at: datetime | None
    item_count: int
    processed_count: int
    refurbished_count: int
    for_parts_count: int
    scrapped_count: int


@dataclass(frozen=True)
class LotItem:
    id: int
    lot_id: int
    serial_number: str
    type: ItemType
    brand: str
    model: str
    entry_method: EntryMethod
    added_at: datetime
    adder_id: int | None
    adder_username: str
    #: the latest inventory; all None while not processed
    state: ItemState | None
    technician: str | None
    operating_system: str | None
    inventoried_at: datetime | None
    recorder_username: str | None
    record_count: int


@dataclass(frozen=True)
class InventoryRecord:
    id: int
    item_id: int
    state: ItemState
    technician: str
    operating_system: str
    recorded_at: datetime
    recorder_id: int | None
    recorder_username: str


@dataclass(frozen=True)
class NewItem:
    """One line of ``AddItems`` as the caller sent it. ``type``/``entry_method`` None: missing or unknown."""

    serial_number: str
    type: ItemType | None
    brand: str
    model: str
    entry_method: EntryMethod | None


@dataclass(frozen=True)
class CleanItem:
    serial_number: str
    serial_key: str
    type: ItemType
    brand: str
    model: str
    entry_method: EntryMethod


@dataclass(frozen=True)
class LotFields:
    reference: str
    supplier: str
    received_date: date
    recovered_date: date | None
    note: str


@dataclass(frozen=True)
class LotFilter:
    status: LotStatus | None = None
    received_from: date | None = None
    received_to: date | None = None
    query: str = ""


@dataclass(frozen=True)
class ItemFilter:
    state: ItemState | None = None
    unprocessed_only: bool = False
    query: str = ""


#: Where a lot stands in ``ListLots``' order (received date descending, then id descending).
LotKey = tuple[date, int]


@dataclass(frozen=True)
class LotPage:
    lots: list[Lot]
    next_after: LotKey | None


@dataclass(frozen=True)
class ItemPage:
    items: list[LotItem]
    #: the id to continue after; None on the last page
    next_after: int | None


@dataclass(frozen=True)
class RecordPage:
    records: list[InventoryRecord]
    next_after: int | None


@dataclass(frozen=True)
class Suggestion:
    value: str
    item_count: int


@dataclass(frozen=True)
class SerialHolder:
    """Who already has a serial number: the item and its lot."""

    serial_key: str
    item_id: int
    lot_id: int
    lot_reference: str


#: Renders a lot's report: (the lot, its items in the order they were added, the generation time) -> PDF bytes.
#: ``await render(lot, items, now)`` -> the PDF; the composition root runs it in a worker process.
ReportRenderer = Callable[[Lot, list[LotItem], datetime], Awaitable[bytes]]


class SerialTaken(Exception):
    """Raised by storage when the unique index refused a serial number (another transaction won a race).
    The use case then looks up the holders and answers ``AlreadyExists`` naming them."""


# --- field rules (the servicer reports them with the same functions; the use cases check again) -------------


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def fold(text: str) -> str:
    """The form compared for uniqueness, search and suggestions: case folded (beyond ASCII too)."""
    return text.casefold()


def _text(v: Validator, field: str, value: str, limit: int, *, required: bool, folded: bool = False) -> str:
    clean = value.strip()
    if not clean:
        if required:
            v.add(field, "is required")
    elif len(clean) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif _has_control(clean):
        v.add(field, "must not contain control characters")
    elif folded and len(fold(clean)) > limit:
        # A few letters fold to two ("ß" to "ss"): the folded form must still fit its column.
        v.add(field, f"must be at most {limit} characters once case is folded")
    return clean


def clean_reference(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, REFERENCE_MAX, required=True, folded=True)


def clean_supplier(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, SUPPLIER_MAX, required=True)


def clean_note(v: Validator, field: str, value: str) -> str:
    """Free text: line breaks and tabs are fine, NUL is not."""
    clean = value.strip()
    if len(clean) > NOTE_MAX:
        v.add(field, f"must be at most {NOTE_MAX} characters")
    elif "\x00" in clean:
        v.add(field, "must not contain NUL characters")
    return clean


def require_date(v: Validator, field: str, value: date | None) -> date | None:
    """A required calendar day (the API layer turns the wire's date into a ``date``, or None when it is unset
    or invalid): None is "is required", unless ``field`` already has a violation (the date given was not one)."""
    if value is None and not any(violation.field == field for violation in v.violations):
        v.add(field, "is required (a date: year, month and day)")
    return value


def check_dates(v: Validator, field: str, received: date | None, recovered: date | None) -> None:
    """The equipment is collected (recovered) before or on the day it is delivered (received)."""
    if received is not None and recovered is not None:
        v.check(recovered <= received, field, "must not be after received_date (equipment is collected, then received)")


def clean_lot_fields(
    v: Validator,
    prefix: str,
    *,
    reference: str,
    supplier: str,
    received_date: date | None,
    recovered_date: date | None,
    note: str,
) -> LotFields | None:
    """A new lot's fields as stored; None (with every violation in ``v``) if one is bad."""
    before = len(v.violations)
    clean_ref = clean_reference(v, f"{prefix}.reference", reference)
    clean_supplier_ = clean_supplier(v, f"{prefix}.supplier", supplier)
    received = require_date(v, f"{prefix}.received_date", received_date)
    check_dates(v, f"{prefix}.recovered_date", received, recovered_date)
    clean_note_ = clean_note(v, f"{prefix}.note", note)
    if len(v.violations) > before or received is None:
        return None
    return LotFields(clean_ref, clean_supplier_, received, recovered_date, clean_note_)


def clean_lot_changes(v: Validator, prefix: str, changes: dict[str, object]) -> dict[str, object]:
    """``UpdateLot``'s changes (a subset of LOT_UPDATABLE_FIELDS: text as the caller typed it, dates as ``date``
    or None, None ``recovered_date`` clearing it), as stored."""
    clean: dict[str, object] = {}
    for name, value in changes.items():
        field = f"{prefix}.{name}"
        if name == "reference":
            clean[name] = clean_reference(v, field, str(value))
        elif name == "supplier":
            clean[name] = clean_supplier(v, field, str(value))
        elif name == "note":
            clean[name] = clean_note(v, field, str(value))
        elif name == "received_date":
            clean[name] = require_date(v, field, value if isinstance(value, date) else None)
        elif name == "recovered_date":
            clean[name] = value if isinstance(value, date) else None
    return clean


def clean_serial(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, SERIAL_MAX, required=True, folded=True)


def clean_brand(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, BRAND_MAX, required=False, folded=True)


def clean_model(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, MODEL_MAX, required=False, folded=True)


TYPE_NAMES = ", ".join(t.value for t in ItemType)
ENTRY_NAMES = ", ".join(m.value for m in EntryMethod)
STATE_NAMES = ", ".join(s.value for s in ItemState)


def clean_new_item(v: Validator, prefix: str, line: NewItem) -> CleanItem | None:
    before = len(v.violations)
    serial = clean_serial(v, f"{prefix}.serial_number", line.serial_number)
    v.check(line.type is not None, f"{prefix}.type", f"is required: one of {TYPE_NAMES}")
    brand = clean_brand(v, f"{prefix}.brand", line.brand)
    model = clean_model(v, f"{prefix}.model", line.model)
    v.check(line.entry_method is not None, f"{prefix}.entry_method", f"is required: one of {ENTRY_NAMES}")
    if len(v.violations) > before or line.type is None or line.entry_method is None:
        return None
    return CleanItem(serial, fold(serial), line.type, brand, model, line.entry_method)


def clean_item_changes(v: Validator, prefix: str, changes: dict[str, object]) -> dict[str, object]:
    """``UpdateItem``'s changes (a subset of ITEM_UPDATABLE_FIELDS; ``type`` None: missing or unknown)."""
    clean: dict[str, object] = {}
    cleaners = {"serial_number": clean_serial, "brand": clean_brand, "model": clean_model}
    for name, value in changes.items():
        if name in cleaners:
            clean[name] = cleaners[name](v, f"{prefix}.{name}", str(value))
        elif name == "type":
            v.check(value is not None, f"{prefix}.type", f"is required: one of {TYPE_NAMES}")
            clean[name] = value
    return clean


def clean_technician(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, TECHNICIAN_MAX, required=True)


def clean_operating_system(v: Validator, field: str, value: str) -> str:
    return _text(v, field, value, OPERATING_SYSTEM_MAX, required=False)


def clean_query(v: Validator, field: str, value: str) -> str:
    clean = value.strip()
    v.check(len(clean) <= QUERY_MAX, field, f"must be at most {QUERY_MAX} characters")
    return clean


def suggestion_limit(v: Validator, limit: int) -> int:
    if limit < 0 or limit > SUGGESTIONS_MAX:
        v.add("limit", f"must be between 1 and {SUGGESTIONS_MAX} (0: {SUGGESTIONS_DEFAULT})")
    return limit or SUGGESTIONS_DEFAULT


def _lot_not_found(lot_id: int) -> NotFound:
    return NotFound(f"lot {lot_id} not found", reason="LOT_NOT_FOUND")


def _item_not_found(item_id: int) -> NotFound:
    return NotFound(f"item {item_id} not found", reason="LOT_ITEM_NOT_FOUND")


def reference_taken(reference: str) -> AlreadyExists:
    """The answer when another lot has this reference (storage raises it too, on a race)."""
    return AlreadyExists(
        f"a lot with the reference {reference!r} already exists (references are compared without regard to case)",
        reason="LOT_REFERENCE_TAKEN",
    )


def serials_taken(clashes: list[tuple[str, str, SerialHolder]]) -> AlreadyExists:
    """``ALREADY_EXISTS`` with one field violation per clash: (field, serial as given, who holds it)."""
    violations = [
        FieldViolation(field, f"serial number {serial!r} is already in lot {holder.lot_reference!r}")
        for field, serial, holder in clashes
    ]
    if len(clashes) == 1:
        _, serial, holder = clashes[0]
        message = f"serial number {serial!r} is already in lot {holder.lot_reference!r}"
    else:
        message = f"{len(clashes)} serial numbers are already in other lots: " + "; ".join(
            f"{v.field}: {v.reason}" for v in violations
        )
    return AlreadyExists(message, reason="SERIAL_NUMBER_TAKEN", violations=violations)


class Lots:
    """Use cases on lots, their items and inventories. Any signed-in person acts; deletions are narrower."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, render_report: ReportRenderer) -> None:
        self._uow = uow
        self._clock = clock
        self._render_report = render_report

    # --- lots -----------------------------------------------------------------------------------------------

    async def create_lot(
        self,
        actor: Principal,
        *,
        reference: str,
        supplier: str,
        received_date: date | None,
        recovered_date: date | None,
        note: str,
    ) -> Lot:
        v = Validator()
        fields = clean_lot_fields(
            v,
            "lot",
            reference=reference,
            supplier=supplier,
            received_date=received_date,
            recovered_date=recovered_date,
            note=note,
        )
        v.raise_if_any()
        assert fields is not None
        async with self._uow() as uow:
            if await uow.lots.reference_taken(fold(fields.reference), other_than=None):
                raise reference_taken(fields.reference)
            now = self._clock()
            lot = await uow.lots.add(fields, reference_key=fold(fields.reference), creator=actor.user, now=now)
            await record_activity(uow, actor.user, "lot.create", "lot", lot.id, lot.reference, now)
            await uow.commit()
        return lot

    async def get_lot(self, actor: Principal, lot_id: int) -> Lot:
        async with self._uow(read_only=True) as uow:
            lot = await uow.lots.get(lot_id)
        if lot is None:
            raise _lot_not_found(lot_id)
        return lot

    async def list_lots(self, actor: Principal, lot_filter: LotFilter, *, after: LotKey | None, limit: int) -> LotPage:
        async with self._uow(read_only=True) as uow:
            found = await uow.lots.page(lot_filter, after=after, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return LotPage(found, (found[-1].received_date, found[-1].id) if more else None)

    async def update_lot(self, actor: Principal, lot_id: int, changes: dict[str, object]) -> Lot:
        v = Validator()
        clean = clean_lot_changes(v, "lot", changes)
        v.raise_if_any()
        async with self._uow() as uow:
            lot = await uow.lots.lock(lot_id)
            if lot is None:
                raise _lot_not_found(lot_id)
            received = clean.get("received_date", lot.received_date)
            recovered = clean.get("recovered_date", lot.recovered_date)
            assert isinstance(received, date) and (recovered is None or isinstance(recovered, date))
            check_dates(v, "lot.recovered_date", received, recovered)
            v.raise_if_any()
            changed = {name: value for name, value in clean.items() if getattr(lot, name) != value}
            if "reference" in changed:
                if await uow.lots.reference_taken(fold(str(changed["reference"])), other_than=lot_id):
                    raise reference_taken(str(changed["reference"]))
            if changed:
                now = self._clock()
                lot = await uow.lots.update(lot_id, changed, now=now)
                await record_activity(uow, actor.user, "lot.update", "lot", lot_id, ", ".join(sorted(changed)), now)
            await uow.commit()
        return lot

    async def delete_lot(self, actor: Principal, lot_id: int) -> None:
        async with self._uow() as uow:
            lot = await uow.lots.lock(lot_id)
            if lot is None:
                raise _lot_not_found(lot_id)
            if not (actor.is_admin or lot.creator_id == actor.user_id):
                raise PermissionDenied("only the lot's creator or an administrator may delete it")
            if lot.item_count:
                raise FailedPrecondition(
                    f"lot {lot.reference!r} holds {lot.item_count} items; delete them first (only an empty lot "
                    "may be deleted)",
                    reason="LOT_NOT_EMPTY",
                )
            await uow.lots.delete(lot_id)
            await record_activity(uow, actor.user, "lot.delete", "lot", lot_id, lot.reference, self._clock())
            await uow.commit()

    # --- items ----------------------------------------------------------------------------------------------

    async def add_items(self, actor: Principal, lot_id: int, lines: list[NewItem]) -> tuple[list[LotItem], Lot]:
        """All of ``lines`` or none. Every bad line is reported at once: ``InvalidInput`` if any line is
        malformed or repeats an earlier one (the serials other lots hold are named too), ``AlreadyExists``
        when the only problem is serial numbers that other items have."""
        v = Validator()
        v.check(0 < len(lines) <= ADD_ITEMS_MAX, "items", f"must hold 1 to {ADD_ITEMS_MAX} items")
        v.raise_if_any()
        clean = [clean_new_item(v, f"items[{i}]", line) for i, line in enumerate(lines)]
        first: dict[str, int] = {}
        for i, item in enumerate(clean):
            if item is None:
                continue
            if item.serial_key in first:
                v.add(f"items[{i}].serial_number", f"repeats items[{first[item.serial_key]}].serial_number")
            else:
                first[item.serial_key] = i
        async with self._uow() as uow:
            lot = await uow.lots.lock(lot_id)
            if lot is None:
                raise _lot_not_found(lot_id)
            unique = {i: item for i, item in enumerate(clean) if item is not None and first[item.serial_key] == i}
            await uow.lot_items.lock_serials([item.serial_key for item in unique.values()])
            clashes = await _clashes(uow, unique)
            if v.violations:
                for field, serial, holder in clashes:
                    v.add(field, f"serial number {serial!r} is already in lot {holder.lot_reference!r}")
                v.raise_if_any()
            if clashes:
                raise serials_taken(clashes)
            items = [item for item in clean if item is not None]
            now = self._clock()
            try:
                added = await uow.lot_items.add_many(lot_id, items, adder=actor.user, now=now)
            except SerialTaken:  # another transaction committed one of them since we looked
                raise serials_taken(await _clashes(uow, dict(enumerate(items)))) from None
            lot = await uow.lots.recount(lot_id, now=now)
            detail = f"{len(added)} items: " + ", ".join(item.serial_number for item in added)
            await record_activity(uow, actor.user, "lot_item.add", "lot", lot_id, detail, now)
            await uow.commit()
        return added, lot

    async def list_items(
        self, actor: Principal, lot_id: int, item_filter: ItemFilter, *, after: int | None, limit: int
    ) -> ItemPage:
        async with self._uow(read_only=True) as uow:
            if await uow.lots.get(lot_id) is None:
                raise _lot_not_found(lot_id)
            found = await uow.lot_items.page(lot_id, item_filter, after=after, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return ItemPage(found, found[-1].id if more else None)

    async def get_item(self, actor: Principal, item_id: int) -> LotItem:
        async with self._uow(read_only=True) as uow:
            item = await uow.lot_items.get(item_id)
        if item is None:
            raise _item_not_found(item_id)
        return item

    async def update_item(self, actor: Principal, item_id: int, changes: dict[str, object]) -> LotItem:
        v = Validator()
        clean = clean_item_changes(v, "item", changes)
        v.raise_if_any()
        async with self._uow() as uow:
            item = await self._locked_item(uow, item_id)
            changed = {name: value for name, value in clean.items() if getattr(item, name) != value}
            if "serial_number" in changed:
                serial = str(changed["serial_number"])
                await uow.lot_items.lock_serials([fold(serial)])
                holder = (await uow.lot_items.holders([fold(serial)])).get(fold(serial))
                if holder is not None and holder.item_id != item_id:
                    raise serials_taken([("item.serial_number", serial, holder)])
            if changed:
                now = self._clock()
                try:
                    item = await uow.lot_items.update(item_id, changed, now=now)
                except SerialTaken:
                    serial = str(changed["serial_number"])
                    holder = (await uow.lot_items.holders([fold(serial)]))[fold(serial)]
                    raise serials_taken([("item.serial_number", serial, holder)]) from None
                await uow.lots.touch(item.lot_id, now=now)
                detail = f"{item.serial_number}: " + ", ".join(sorted(changed))
                await record_activity(uow, actor.user, "lot_item.update", "lot_item", item_id, detail, now)
            await uow.commit()
        return item

    async def delete_item(self, actor: Principal, item_id: int) -> Lot:
        async with self._uow() as uow:
            item = await self._locked_item(uow, item_id)
            lot = await uow.lots.get(item.lot_id)
            assert lot is not None
            allowed = actor.is_admin or actor.user_id in (lot.creator_id, item.adder_id)
            if not allowed:
                raise PermissionDenied(
                    "only the lot's creator, the person who added the item or an administrator may delete it"
                )
            now = self._clock()
            await uow.lot_items.delete(item_id)
            lot = await uow.lots.recount(item.lot_id, now=now)
            detail = f"{item.serial_number} (lot {lot.reference})"
            await record_activity(uow, actor.user, "lot_item.delete", "lot_item", item_id, detail, now)
            await uow.commit()
        return lot

    async def inventory_item(
        self, actor: Principal, item_id: int, *, state: ItemState | None, technician: str, operating_system: str
    ) -> tuple[LotItem, InventoryRecord, Lot]:
        v = Validator()
        v.check(state is not None, "state", f"is required: one of {STATE_NAMES}")
        technician = clean_technician(v, "technician", technician)
        operating_system = clean_operating_system(v, "operating_system", operating_system)
        v.raise_if_any()
        assert state is not None
        async with self._uow() as uow:
            item = await self._locked_item(uow, item_id)
            now = self._clock()
            record = await uow.lot_items.record_inventory(
                item_id, state, technician, operating_system, recorder=actor.user, now=now
            )
            item = await uow.lot_items.get(item_id)
            assert item is not None
            lot = await uow.lots.recount(item.lot_id, now=now)
            detail = f"{item.serial_number}: {state.value} by {technician}"
            if item.record_count > 1:
                detail += " (correction)"
            await record_activity(uow, actor.user, "lot_item.inventory", "lot_item", item_id, detail, now)
            await uow.commit()
        return item, record, lot

    async def list_inventory_records(
        self, actor: Principal, item_id: int, *, after: int | None, limit: int
    ) -> RecordPage:
        async with self._uow(read_only=True) as uow:
            if await uow.lot_items.get(item_id) is None:
                raise _item_not_found(item_id)
            found = await uow.lot_items.records(item_id, after=after, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return RecordPage(found, found[-1].id if more else None)

    async def _locked_item(self, uow: UnitOfWork, item_id: int) -> LotItem:
        """The item, with its lot locked (the lot's lock guards its items and their counts)."""
        item = await uow.lot_items.get(item_id)
        if item is None:
            raise _item_not_found(item_id)
        await uow.lots.lock(item.lot_id)
        item = await uow.lot_items.get(item_id)  # read again under the lock: it may have changed or gone
        if item is None:
            raise _item_not_found(item_id)
        return item

    # --- report and suggestions ---------------------------------------------------------------------------

    async def lot_report(self, actor: Principal, lot_id: int) -> tuple[Lot, bytes]:
        """The lot's PDF traceability report (CPU work: ``render_report`` runs it away from the event loop)."""
        async with self._uow(read_only=True) as uow:
            lot = await uow.lots.get(lot_id)
            if lot is None:
                raise _lot_not_found(lot_id)
            items = await uow.lot_items.all_of(lot_id)
        pdf = await self._render_report(lot, items, self._clock())
        return lot, pdf

    async def suggest_brands(self, actor: Principal, prefix: str, limit: int) -> list[Suggestion]:
        async with self._uow(read_only=True) as uow:
            counts = await uow.lot_items.brand_counts(fold(prefix.strip()))
        return best_suggestions(counts, limit)

    async def suggest_models(self, actor: Principal, brand: str, prefix: str, limit: int) -> list[Suggestion]:
        async with self._uow(read_only=True) as uow:
            counts = await uow.lot_items.model_counts(fold(brand.strip()), fold(prefix.strip()))
        return best_suggestions(counts, limit)


def best_suggestions(counts: list[tuple[str, str, int]], limit: int) -> list[Suggestion]:
    """From (folded key, spelling, items) rows: one suggestion per key, spelled as most items spell it,
    most used first, then alphabetically (by folded key)."""
    totals: dict[str, int] = {}
    spelling: dict[str, tuple[int, str]] = {}
    for key, value, n in counts:
        totals[key] = totals.get(key, 0) + n
        best = spelling.get(key)
        if best is None or n > best[0] or (n == best[0] and value < best[1]):
            spelling[key] = (n, value)
    ranked = sorted(totals, key=lambda key: (-totals[key], key))[:limit]
    return [Suggestion(spelling[key][1], totals[key]) for key in ranked]


async def _clashes(uow: UnitOfWork, items: dict[int, CleanItem]) -> list[tuple[str, str, SerialHolder]]:
    """(field, serial, holder) for each of ``items`` (by line index) whose serial another item has."""
    holders = await uow.lot_items.holders([item.serial_key for item in items.values()])
    return [
        (f"items[{i}].serial_number", item.serial_number, holders[item.serial_key])
        for i, item in sorted(items.items())
        if item.serial_key in holders
    ]
