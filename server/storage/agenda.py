"""Agenda rows: events and their shares, the range query on their spans, and revision-checked writes."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.agenda import AgendaEvent, EventFields, Span
from ..domain.recurrence import Recurrence
from .models import AgendaEventRow, AgendaShareRow

#: Reads must see what this transaction just wrote, not rows the session loaded before.
FRESH = {"populate_existing": True}
UNSYNCED = {"synchronize_session": False}


def _event(row: AgendaEventRow, shared_with: list[int]) -> AgendaEvent:
    fields = EventFields(
        title=row.title,
        description=row.description,
        location=row.location,
        color=row.color,
        start=row.start_at,
        end=row.end_at,
        start_date=row.start_date,
        end_date=row.end_date,
        time_zone=row.time_zone,
        recurrence=Recurrence.from_json(json.loads(row.recurrence)) if row.recurrence else None,
        shared_with=tuple(sorted(shared_with)),
        shared_with_everyone=row.shared_with_everyone,
    )
    return AgendaEvent(
        id=row.id,
        owner_id=row.owner_id,
        fields=fields,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _columns(fields: EventFields, span: Span) -> dict[str, object]:
    return {
        "title": fields.title,
        "description": fields.description,
        "location": fields.location,
        "color": fields.color,
        "all_day": fields.all_day,
        "start_at": fields.start,
        "end_at": fields.end,
        "start_date": fields.start_date,
        "end_date": fields.end_date,
        "time_zone": fields.time_zone,
        "recurrence": json.dumps(fields.recurrence.to_json()) if fields.recurrence else None,
        "shared_with_everyone": fields.shared_with_everyone,
        "span_start": span.first,
        "span_end": span.last,
    }


def _visible(user_id: int) -> ColumnElement[bool]:
    shared = exists().where(AgendaShareRow.event_id == AgendaEventRow.id, AgendaShareRow.user_id == user_id)
    return or_(AgendaEventRow.owner_id == user_id, AgendaEventRow.shared_with_everyone, shared)


class SqlAgendaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _with_shares(self, rows: list[AgendaEventRow]) -> list[AgendaEvent]:
        shares: dict[int, list[int]] = defaultdict(list)
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):  # bounded IN lists
            found = await self._s.execute(
                select(AgendaShareRow.event_id, AgendaShareRow.user_id).where(
                    AgendaShareRow.event_id.in_(ids[start : start + 500])
                )
            )
            for event_id, user_id in found.tuples():
                shares[event_id].append(user_id)
        return [_event(row, shares[row.id]) for row in rows]

    async def get(self, event_id: int) -> AgendaEvent | None:
        row = await self._s.scalar(
            select(AgendaEventRow).where(AgendaEventRow.id == event_id).execution_options(**FRESH)
        )
        return None if row is None else (await self._with_shares([row]))[0]

    async def _share(self, event_id: int, user_ids: tuple[int, ...]) -> None:
        await self._s.execute(
            delete(AgendaShareRow).where(AgendaShareRow.event_id == event_id).execution_options(**UNSYNCED)
        )
        self._s.add_all(AgendaShareRow(event_id=event_id, user_id=user_id) for user_id in user_ids)
        await self._s.flush()

    async def add(self, *, owner_id: int, fields: EventFields, span: Span, now: datetime) -> AgendaEvent:
        row = AgendaEventRow(owner_id=owner_id, revision=1, created_at=now, updated_at=now, **_columns(fields, span))
        self._s.add(row)
        await self._s.flush()
        await self._share(row.id, fields.shared_with)
        return _event(row, list(fields.shared_with))

    async def update(
        self, event_id: int, *, revision: int, fields: EventFields, span: Span, now: datetime
    ) -> AgendaEvent | None:
        # Only the revision that was read: a concurrent update that committed first makes this touch nothing.
        done = await self._s.execute(
            update(AgendaEventRow)
            .where(AgendaEventRow.id == event_id, AgendaEventRow.revision == revision)
            .values(**_columns(fields, span), revision=revision + 1, updated_at=now)
            .execution_options(**UNSYNCED)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        await self._share(event_id, fields.shared_with)
        return await self.get(event_id)

    async def delete(self, event_id: int, *, revision: int) -> bool:
        done = await self._s.execute(
            delete(AgendaEventRow)
            .where(AgendaEventRow.id == event_id, AgendaEventRow.revision == revision)
            .execution_options(**UNSYNCED)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def visible_between(self, user_id: int, start: datetime, end: datetime, *, limit: int) -> list[AgendaEvent]:
        rows = await self._s.scalars(
            select(AgendaEventRow)
            .where(
                _visible(user_id),
                AgendaEventRow.span_start < end,
                or_(AgendaEventRow.span_end.is_(None), AgendaEventRow.span_end > start),
            )
            .order_by(AgendaEventRow.id)
            .limit(limit)
            .execution_options(**FRESH)
        )
        return await self._with_shares(list(rows))

    async def visible(self, user_id: int, *, limit: int) -> list[AgendaEvent]:
        rows = await self._s.scalars(
            select(AgendaEventRow)
            .where(_visible(user_id))
            .order_by(AgendaEventRow.id)
            .limit(limit)
            .execution_options(**FRESH)
        )
        return await self._with_shares(list(rows))
