"""Lot rows: lots with their derived status and counts, their items, and the items' inventory records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.lots import (
    CleanItem,
    EntryMethod,
    InventoryRecord,
    ItemFilter,
    ItemState,
    ItemType,
    Lot,
    LotFields,
    LotFilter,
    LotItem,
    LotKey,
    LotStatus,
    SerialHolder,
    SerialTaken,
    fold,
    reference_taken,
)
from ..domain.model import User
from .chat import escape_like
from .models import LotInventoryRecordRow, LotItemRow, LotRow

#: Reads must see what this transaction's UPDATEs just wrote, not rows the session loaded before them.
FRESH = {"populate_existing": True}
UNSYNCED = {"synchronize_session": False}
#: Serial numbers looked up per statement (well under every driver's limit on bound parameters).
LOOKUP_CHUNK = 500
#: The first key of the PostgreSQL advisory locks taken on serial numbers (the second is the serial's hash), so
#: that they never collide with advisory locks taken for something else.
SERIAL_LOCK_SPACE = 7_301
_LOCK_SERIALS = text(
    "SELECT pg_advisory_xact_lock(:space, h) FROM "
    "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS sorted"
)


def _lot(row: LotRow) -> Lot:
    return Lot(
        id=row.id,
        reference=row.reference,
        supplier=row.supplier,
        received_date=row.received_date,
        recovered_date=row.recovered_date,
        note=row.note,
        creator_id=row.creator_id,
        creator_username=row.creator_username,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=LotStatus(row.status),
        finished_at=row.finished_at,
        item_count=row.item_count,
        processed_count=row.processed_count,
        refurbished_count=row.refurbished_count,
        for_parts_count=row.for_parts_count,
        scrapped_count=row.scrapped_count,
    )


def _item(row: LotItemRow) -> LotItem:
    return LotItem(
        id=row.id,
        lot_id=row.lot_id,
        serial_number=row.serial_number,
        type=ItemType(row.type),
        brand=row.brand,
        model=row.model,
        entry_method=EntryMethod(row.entry_method),
        added_at=row.added_at,
        adder_id=row.adder_id,
        adder_username=row.adder_username,
        state=None if row.state is None else ItemState(row.state),
        technician=row.technician,
        operating_system=row.operating_system,
        inventoried_at=row.inventoried_at,
        recorder_username=row.recorder_username,
        record_count=row.record_count,
    )


def _record(row: LotInventoryRecordRow) -> InventoryRecord:
    return InventoryRecord(
        id=row.id,
        item_id=row.item_id,
        state=ItemState(row.state),
        technician=row.technician,
        operating_system=row.operating_system,
        recorded_at=row.recorded_at,
        recorder_id=row.recorder_id,
        recorder_username=row.recorder_username,
    )


def _search_text(reference: str, supplier: str, note: str) -> str:
    return fold(f"{reference}\n{supplier}\n{note}")


def _contains(text: str) -> str:
    return f"%{escape_like(fold(text))}%"


class SqlLotRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, lot_id: int) -> Lot | None:
        row = await self._s.scalar(select(LotRow).where(LotRow.id == lot_id).execution_options(**FRESH))
        return None if row is None else _lot(row)

    async def lock(self, lot_id: int) -> Lot | None:
        # FOR NO KEY UPDATE (key_share): item inserts take FOR KEY SHARE on the lot for their foreign key and
        # need not wait for it; two writers of one lot's items still queue here, so each recount sees the
        # other's result. SQLite needs none of it: a writing unit of work begins with BEGIN IMMEDIATE.
        stmt = select(LotRow).where(LotRow.id == lot_id).execution_options(**FRESH)
        if self._s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(key_share=True)
        row = await self._s.scalar(stmt)
        return None if row is None else _lot(row)

    async def reference_taken(self, reference_key: str, *, other_than: int | None) -> bool:
        stmt = select(LotRow.id).where(LotRow.reference_key == reference_key)
        if other_than is not None:
            stmt = stmt.where(LotRow.id != other_than)
        return await self._s.scalar(stmt.limit(1)) is not None

    async def add(self, fields: LotFields, *, reference_key: str, creator: User, now: datetime) -> Lot:
        row = LotRow(
            reference=fields.reference,
            reference_key=reference_key,
            supplier=fields.supplier,
            received_date=fields.received_date,
            recovered_date=fields.recovered_date,
            note=fields.note,
            search_text=_search_text(fields.reference, fields.supplier, fields.note),
            creator_id=creator.id,
            creator_username=creator.username,
            created_at=now,
            updated_at=now,
            status=LotStatus.OPEN.value,
            finished_at=None,
            item_count=0,
            processed_count=0,
            refurbished_count=0,
            for_parts_count=0,
            scrapped_count=0,
        )
        self._s.add(row)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise reference_taken(fields.reference) from None
        return _lot(row)

    async def update(self, lot_id: int, changes: dict[str, object], *, now: datetime) -> Lot:
        row = await self._s.scalar(select(LotRow).where(LotRow.id == lot_id).execution_options(**FRESH))
        assert row is not None
        for name, value in changes.items():
            setattr(row, name, value)
        if "reference" in changes:
            row.reference_key = fold(row.reference)
        row.search_text = _search_text(row.reference, row.supplier, row.note)
        row.updated_at = now
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise reference_taken(str(changes.get("reference", row.reference))) from None
        return _lot(row)

    async def touch(self, lot_id: int, *, now: datetime) -> None:
        await self._s.execute(
            update(LotRow).where(LotRow.id == lot_id).values(updated_at=now).execution_options(**UNSYNCED)
        )

    async def recount(self, lot_id: int, *, now: datetime) -> Lot:
        def counted(state: ItemState) -> Any:
            return func.coalesce(func.sum(case((LotItemRow.state == state.value, 1), else_=0)), 0)

        total, processed, refurbished, for_parts, scrapped = (
            await self._s.execute(
                select(
                    func.count(LotItemRow.id),
                    func.count(LotItemRow.state),
                    counted(ItemState.REFURBISHED),
                    counted(ItemState.FOR_PARTS),
                    counted(ItemState.SCRAPPED),
                ).where(LotItemRow.lot_id == lot_id)
            )
        ).one()
        row = await self._s.scalar(select(LotRow).where(LotRow.id == lot_id).execution_options(**FRESH))
        assert row is not None
        finished = total > 0 and processed == total
        # The moment the last unprocessed item was processed; a correction of a finished lot keeps it.
        row.finished_at = (row.finished_at or now) if finished else None
        row.status = (LotStatus.FINISHED if finished else LotStatus.OPEN).value
        row.item_count, row.processed_count = total, processed
        row.refurbished_count, row.for_parts_count, row.scrapped_count = refurbished, for_parts, scrapped
        row.updated_at = now
        await self._s.flush()
        return _lot(row)

    async def delete(self, lot_id: int) -> None:
        await self._s.execute(delete(LotRow).where(LotRow.id == lot_id).execution_options(**UNSYNCED))

    async def page(self, lot_filter: LotFilter, *, after: LotKey | None, limit: int) -> list[Lot]:
        stmt = (
            select(LotRow)
            .order_by(LotRow.received_date.desc(), LotRow.id.desc())
            .limit(limit)
            .execution_options(**FRESH)
        )
        if lot_filter.status is not None:
            stmt = stmt.where(LotRow.status == lot_filter.status.value)
        if lot_filter.received_from is not None:
            stmt = stmt.where(LotRow.received_date >= lot_filter.received_from)
        if lot_filter.received_to is not None:
            stmt = stmt.where(LotRow.received_date <= lot_filter.received_to)
        if lot_filter.query:
            pattern = _contains(lot_filter.query)
            serial_matches = exists().where(
                LotItemRow.lot_id == LotRow.id, LotItemRow.serial_key.like(pattern, escape="\\")
            )
            stmt = stmt.where(or_(LotRow.search_text.like(pattern, escape="\\"), serial_matches))
        if after is not None:
            at_date, at_id = after
            stmt = stmt.where(
                or_(LotRow.received_date < at_date, and_(LotRow.received_date == at_date, LotRow.id < at_id))
            )
        return [_lot(row) for row in await self._s.scalars(stmt)]


class SqlLotItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, item_id: int) -> LotItem | None:
        row = await self._s.scalar(select(LotItemRow).where(LotItemRow.id == item_id).execution_options(**FRESH))
        return None if row is None else _item(row)

    async def holders(self, serial_keys: list[str]) -> dict[str, SerialHolder]:
        found: dict[str, SerialHolder] = {}
        for start in range(0, len(serial_keys), LOOKUP_CHUNK):
            chunk = serial_keys[start : start + LOOKUP_CHUNK]
            rows = await self._s.execute(
                select(LotItemRow.serial_key, LotItemRow.id, LotRow.id, LotRow.reference)
                .join(LotRow, LotRow.id == LotItemRow.lot_id)
                .where(LotItemRow.serial_key.in_(chunk))
            )
            for key, item_id, lot_id, reference in rows.tuples():
                found[key] = SerialHolder(key, item_id, lot_id, reference)
        return found

    async def lock_serials(self, serial_keys: list[str]) -> None:
        # Why: two batches that share serials, inserted in different orders into different lots, would each
        # wait on the other's uncommitted row in the unique index, a deadlock PostgreSQL breaks by failing one
        # of them. Taking a lock per serial first, all in one order (by hash), makes the second batch wait for
        # the first to commit, then see its serials and name their lot. The unique index stays the guarantee.
        # SQLite needs none of it: a writing unit of work begins with BEGIN IMMEDIATE.
        if serial_keys and self._s.get_bind().dialect.name == "postgresql":
            await self._s.execute(_LOCK_SERIALS, {"space": SERIAL_LOCK_SPACE, "keys": sorted(set(serial_keys))})

    async def add_many(self, lot_id: int, items: list[CleanItem], *, adder: User, now: datetime) -> list[LotItem]:
        rows = [
            LotItemRow(
                lot_id=lot_id,
                serial_number=item.serial_number,
                serial_key=item.serial_key,
                type=item.type.value,
                brand=item.brand,
                brand_key=fold(item.brand),
                model=item.model,
                model_key=fold(item.model),
                entry_method=item.entry_method.value,
                added_at=now,
                adder_id=adder.id,
                adder_username=adder.username,
                record_count=0,
            )
            for item in items
        ]
        try:
            async with self._s.begin_nested():
                self._s.add_all(rows)
                await self._s.flush()
        except IntegrityError:
            # The unique index on serial_key: another transaction committed one of these serials since the
            # holders were looked up. The savepoint is rolled back and the transaction goes on (to name them);
            # none of these rows may stay in the session, or the next query's autoflush would insert them.
            for row in rows:
                if row in self._s:
                    self._s.expunge(row)
            raise SerialTaken() from None
        return [_item(row) for row in rows]

    async def update(self, item_id: int, changes: dict[str, object], *, now: datetime) -> LotItem:
        row = await self._s.scalar(select(LotItemRow).where(LotItemRow.id == item_id).execution_options(**FRESH))
        assert row is not None
        if "serial_number" in changes:
            row.serial_number = str(changes["serial_number"])
            row.serial_key = fold(row.serial_number)
        if "type" in changes:
            assert isinstance(changes["type"], ItemType)
            row.type = changes["type"].value
        if "brand" in changes:
            row.brand = str(changes["brand"])
            row.brand_key = fold(row.brand)
        if "model" in changes:
            row.model = str(changes["model"])
            row.model_key = fold(row.model)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise SerialTaken() from None
        return _item(row)

    async def delete(self, item_id: int) -> None:
        # Explicitly, not by ON DELETE CASCADE alone: the records go first whatever the connection's settings.
        await self._s.execute(
            delete(LotInventoryRecordRow).where(LotInventoryRecordRow.item_id == item_id).execution_options(**UNSYNCED)
        )
        await self._s.execute(delete(LotItemRow).where(LotItemRow.id == item_id).execution_options(**UNSYNCED))

    async def record_inventory(
        self, item_id: int, state: ItemState, technician: str, operating_system: str, *, recorder: User, now: datetime
    ) -> InventoryRecord:
        record = LotInventoryRecordRow(
            item_id=item_id,
            state=state.value,
            technician=technician,
            operating_system=operating_system,
            recorded_at=now,
            recorder_id=recorder.id,
            recorder_username=recorder.username,
        )
        self._s.add(record)
        await self._s.flush()
        await self._s.execute(
            update(LotItemRow)
            .where(LotItemRow.id == item_id)
            .values(
                state=state.value,
                technician=technician,
                operating_system=operating_system,
                inventoried_at=now,
                recorder_username=recorder.username,
                record_count=LotItemRow.record_count + 1,
            )
            .execution_options(**UNSYNCED)
        )
        return _record(record)

    async def records(self, item_id: int, *, after: int | None, limit: int) -> list[InventoryRecord]:
        stmt = (
            select(LotInventoryRecordRow)
            .where(LotInventoryRecordRow.item_id == item_id)
            .order_by(LotInventoryRecordRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(LotInventoryRecordRow.id > after)
        return [_record(row) for row in await self._s.scalars(stmt)]

    async def page(self, lot_id: int, item_filter: ItemFilter, *, after: int | None, limit: int) -> list[LotItem]:
        stmt = (
            select(LotItemRow)
            .where(LotItemRow.lot_id == lot_id)
            .order_by(LotItemRow.id)
            .limit(limit)
            .execution_options(**FRESH)
        )
        if item_filter.state is not None:
            stmt = stmt.where(LotItemRow.state == item_filter.state.value)
        if item_filter.unprocessed_only:
            stmt = stmt.where(LotItemRow.state.is_(None))
        if item_filter.query:
            pattern = _contains(item_filter.query)
            stmt = stmt.where(
                or_(
                    LotItemRow.serial_key.like(pattern, escape="\\"),
                    LotItemRow.brand_key.like(pattern, escape="\\"),
                    LotItemRow.model_key.like(pattern, escape="\\"),
                )
            )
        if after is not None:
            stmt = stmt.where(LotItemRow.id > after)
        return [_item(row) for row in await self._s.scalars(stmt)]

    async def all_of(self, lot_id: int) -> list[LotItem]:
        stmt = select(LotItemRow).where(LotItemRow.lot_id == lot_id).order_by(LotItemRow.id)
        return [_item(row) for row in await self._s.scalars(stmt.execution_options(**FRESH))]

    async def brand_counts(self, prefix_key: str) -> list[tuple[str, str, int]]:
        stmt = (
            select(LotItemRow.brand_key, LotItemRow.brand, func.count())
            .where(LotItemRow.brand_key != "", LotItemRow.brand_key.like(f"{escape_like(prefix_key)}%", escape="\\"))
            .group_by(LotItemRow.brand_key, LotItemRow.brand)
        )
        return [(key, value, n) for key, value, n in (await self._s.execute(stmt)).tuples()]

    async def model_counts(self, brand_key: str, prefix_key: str) -> list[tuple[str, str, int]]:
        stmt = (
            select(LotItemRow.model_key, LotItemRow.model, func.count())
            .where(LotItemRow.model_key != "", LotItemRow.model_key.like(f"{escape_like(prefix_key)}%", escape="\\"))
            .group_by(LotItemRow.model_key, LotItemRow.model)
        )
        if brand_key:
            stmt = stmt.where(LotItemRow.brand_key == brand_key)
        return [(key, value, n) for key, value, n in (await self._s.execute(stmt)).tuples()]
