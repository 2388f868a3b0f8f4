"""Shortcut rows: each person's categories and saved links, and the plain UPDATEs that renumber them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.shortcuts import UNCATEGORISED, Category, ListKey, Shortcut, name_taken
from .chat import escape_like
from .models import ShortcutCategoryRow, ShortcutRow, UserRow

#: Reads must see what this transaction's UPDATEs just wrote, not rows the session loaded before them.
FRESH = {"populate_existing": True}
#: Renumbering UPDATEs touch rows by range; nothing loaded needs to follow them (reads are FRESH).
UNSYNCED = {"synchronize_session": False}


def _category(row: ShortcutCategoryRow, shortcut_count: int) -> Category:
    return Category(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        position=row.position,
        shortcut_count=shortcut_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _search_text(title: str, url: str) -> str:
    return f"{title}\n{url}".casefold()


def _shortcut(row: ShortcutRow) -> Shortcut:
    return Shortcut(
        id=row.id,
        user_id=row.user_id,
        category_id=row.category_id,
        title=row.title,
        url=row.url,
        description=row.description,
        position=row.position,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _in_range(position: InstrumentedAttribute[int], start: int, end: int | None) -> ColumnElement[bool]:
    """``start`` <= position < ``end`` (no ``end``: every position from ``start`` on)."""
    if end is None:
        return position >= start
    return and_(position >= start, position < end)


class SqlShortcutCategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int, category_id: int) -> Category | None:
        row = await self._s.scalar(
            select(ShortcutCategoryRow)
            .where(ShortcutCategoryRow.id == category_id, ShortcutCategoryRow.user_id == user_id)
            .execution_options(**FRESH)
        )
        if row is None:
            return None
        count = await self._s.scalar(
            select(func.count()).select_from(ShortcutRow).where(ShortcutRow.category_id == category_id)
        )
        return _category(row, count or 0)

    async def list(self, user_id: int) -> list[Category]:
        counts = (
            select(ShortcutRow.category_id, func.count().label("n"))
            .where(ShortcutRow.user_id == user_id, ShortcutRow.category_id.is_not(None))
            .group_by(ShortcutRow.category_id)
            .subquery()
        )
        rows = await self._s.execute(
            select(ShortcutCategoryRow, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.category_id == ShortcutCategoryRow.id)
            .where(ShortcutCategoryRow.user_id == user_id)
            .order_by(ShortcutCategoryRow.position, ShortcutCategoryRow.id)
            .execution_options(**FRESH)
        )
        return [_category(row, n) for row, n in rows.tuples()]

    async def count(self, user_id: int) -> int:
        stmt = select(func.count()).select_from(ShortcutCategoryRow).where(ShortcutCategoryRow.user_id == user_id)
        return await self._s.scalar(stmt) or 0

    async def name_taken(self, user_id: int, name_key: str, *, other_than: int | None) -> bool:
        stmt = select(ShortcutCategoryRow.id).where(
            ShortcutCategoryRow.user_id == user_id, ShortcutCategoryRow.name_key == name_key
        )
        if other_than is not None:
            stmt = stmt.where(ShortcutCategoryRow.id != other_than)
        return await self._s.scalar(stmt.limit(1)) is not None

    async def add(self, *, user_id: int, name: str, name_key: str, position: int, now: datetime) -> Category:
        row = ShortcutCategoryRow(
            user_id=user_id, name=name, name_key=name_key, position=position, created_at=now, updated_at=now
        )
        self._s.add(row)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise name_taken(name) from None
        return _category(row, 0)

    async def rename(self, category_id: int, *, name: str, name_key: str, now: datetime) -> None:
        try:
            async with self._s.begin_nested():
                await self._s.execute(
                    update(ShortcutCategoryRow)
                    .where(ShortcutCategoryRow.id == category_id)
                    .values(name=name, name_key=name_key, updated_at=now)
                    .execution_options(**UNSYNCED)
                )
        except IntegrityError:
            raise name_taken(name) from None

    async def shift(self, user_id: int, *, start: int, end: int | None, by: int) -> None:
        await self._s.execute(
            update(ShortcutCategoryRow)
            .where(ShortcutCategoryRow.user_id == user_id, _in_range(ShortcutCategoryRow.position, start, end))
            .values(position=ShortcutCategoryRow.position + by)
            .execution_options(**UNSYNCED)
        )

    async def place(self, category_id: int, *, position: int, now: datetime) -> None:
        await self._s.execute(
            update(ShortcutCategoryRow)
            .where(ShortcutCategoryRow.id == category_id)
            .values(position=position, updated_at=now)
            .execution_options(**UNSYNCED)
        )

    async def delete(self, category_id: int) -> None:
        await self._s.execute(
            delete(ShortcutCategoryRow).where(ShortcutCategoryRow.id == category_id).execution_options(**UNSYNCED)
        )


def _group(category_id: int | None) -> ColumnElement[bool]:
    """The shortcuts of one category, or (None) the uncategorised ones."""
    if category_id is None:
        return ShortcutRow.category_id.is_(None)
    return ShortcutRow.category_id == category_id


class SqlShortcutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def lock_person(self, user_id: int) -> None:
        # Why the person's users row, and not their shortcut rows: a create must count and append, and a
        # lock on the rows that exist does not stop another transaction from inserting next to them (two
        # creates would both take position n). One row per person serialises every change to their
        # shortcuts and categories, whichever rows it touches, and leaves other people's changes free.
        # FOR NO KEY UPDATE (key_share) rather than FOR UPDATE: inserts elsewhere that reference the person
        # (sessions, messages) take FOR KEY SHARE on this row for their foreign key check, and need not wait.
        # Taken first in every writing unit of work here, it also gives one lock order: no deadlocks.
        # SQLite needs none of this: a writing unit of work begins with BEGIN IMMEDIATE, so writers are
        # already one at a time, and a read under it sees every committed write.
        if self._s.get_bind().dialect.name == "postgresql":
            await self._s.execute(select(UserRow.id).where(UserRow.id == user_id).with_for_update(key_share=True))

    async def get(self, user_id: int, shortcut_id: int) -> Shortcut | None:
        row = await self._s.scalar(
            select(ShortcutRow)
            .where(ShortcutRow.id == shortcut_id, ShortcutRow.user_id == user_id)
            .execution_options(**FRESH)
        )
        return None if row is None else _shortcut(row)

    async def count(self, user_id: int) -> int:
        return await self._s.scalar(select(func.count()).where(ShortcutRow.user_id == user_id)) or 0

    async def count_in(self, user_id: int, category_id: int | None) -> int:
        stmt = select(func.count()).where(ShortcutRow.user_id == user_id, _group(category_id))
        return await self._s.scalar(stmt) or 0

    async def add(
        self,
        *,
        user_id: int,
        category_id: int | None,
        title: str,
        url: str,
        description: str,
        position: int,
        now: datetime,
    ) -> Shortcut:
        row = ShortcutRow(
            user_id=user_id,
            category_id=category_id,
            title=title,
            url=url,
            description=description,
            search_text=_search_text(title, url),
            position=position,
            created_at=now,
            updated_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return _shortcut(row)

    async def update(self, shortcut_id: int, *, now: datetime, **changes: object) -> None:
        allowed = {name: str(changes[name]) for name in ("title", "url", "description") if name in changes}
        if "title" in allowed or "url" in allowed:
            current = (
                await self._s.execute(select(ShortcutRow.title, ShortcutRow.url).where(ShortcutRow.id == shortcut_id))
            ).one()
            allowed["search_text"] = _search_text(allowed.get("title", current.title), allowed.get("url", current.url))
        await self._s.execute(
            update(ShortcutRow)
            .where(ShortcutRow.id == shortcut_id)
            .values(**allowed, updated_at=now)
            .execution_options(**UNSYNCED)
        )

    async def shift(self, user_id: int, category_id: int | None, *, start: int, end: int | None, by: int) -> None:
        await self._s.execute(
            update(ShortcutRow)
            .where(ShortcutRow.user_id == user_id, _group(category_id), _in_range(ShortcutRow.position, start, end))
            .values(position=ShortcutRow.position + by)
            .execution_options(**UNSYNCED)
        )

    async def place(self, shortcut_id: int, *, category_id: int | None, position: int, now: datetime) -> None:
        await self._s.execute(
            update(ShortcutRow)
            .where(ShortcutRow.id == shortcut_id)
            .values(category_id=category_id, position=position, updated_at=now)
            .execution_options(**UNSYNCED)
        )

    async def uncategorise(self, user_id: int, category_id: int, *, offset: int, now: datetime) -> int:
        done = await self._s.execute(
            update(ShortcutRow)
            .where(ShortcutRow.user_id == user_id, ShortcutRow.category_id == category_id)
            .values(category_id=None, position=ShortcutRow.position + offset, updated_at=now)
            .execution_options(**UNSYNCED)
        )
        return done.rowcount  # type: ignore[attr-defined, no-any-return]

    async def delete(self, shortcut_id: int) -> None:
        await self._s.execute(delete(ShortcutRow).where(ShortcutRow.id == shortcut_id).execution_options(**UNSYNCED))

    async def page(
        self,
        user_id: int,
        *,
        category_id: int | None,
        only_category: bool,
        query: str,
        after: ListKey | None,
        limit: int,
    ) -> list[tuple[Shortcut, ListKey]]:
        # The uncategorised ones first (their "category position" is UNCATEGORISED, below every real one).
        category_position = func.coalesce(ShortcutCategoryRow.position, UNCATEGORISED)
        stmt = (
            select(ShortcutRow, category_position)
            .outerjoin(ShortcutCategoryRow, ShortcutCategoryRow.id == ShortcutRow.category_id)
            .where(ShortcutRow.user_id == user_id)
            .order_by(category_position, ShortcutRow.position, ShortcutRow.id)
            .limit(limit)
            .execution_options(**FRESH)
        )
        if only_category:
            stmt = stmt.where(_group(category_id))
        if query:
            # Case-folded in Python on both sides, as chat search does: the same on SQLite and PostgreSQL.
            stmt = stmt.where(ShortcutRow.search_text.like(f"%{escape_like(query.casefold())}%", escape="\\"))
        if after is not None:
            at_category, at_position, at_id = after
            stmt = stmt.where(
                or_(
                    category_position > at_category,
                    and_(
                        category_position == at_category,
                        or_(
                            ShortcutRow.position > at_position,
                            and_(ShortcutRow.position == at_position, ShortcutRow.id > at_id),
                        ),
                    ),
                )
            )
        rows = await self._s.execute(stmt)
        return [(_shortcut(row), (position, row.position, row.id)) for row, position in rows.tuples()]
