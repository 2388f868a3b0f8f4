"""The activity log's rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.activity import ActivityEntry, ActivityFilter
from .models import ActivityRow


def _entry(row: ActivityRow) -> ActivityEntry:
    return ActivityEntry(
        id=row.id,
        created_at=row.created_at,
        actor_id=row.actor_id or 0,
        actor_username=row.actor_username,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        detail=row.detail,
    )


class SqlActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, entry: ActivityEntry) -> None:
        self._s.add(
            ActivityRow(
                id=entry.id,
                created_at=entry.created_at,
                actor_id=entry.actor_id or None,
                actor_username=entry.actor_username,
                action=entry.action,
                resource_type=entry.resource_type,
                resource_id=entry.resource_id,
                detail=entry.detail,
            )
        )
        await self._s.flush()

    async def page(self, activity_filter: ActivityFilter, *, before_id: int | None, limit: int) -> list[ActivityEntry]:
        f = activity_filter
        query = select(ActivityRow).order_by(ActivityRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(ActivityRow.id < before_id)
        if f.actor_id:
            query = query.where(ActivityRow.actor_id == f.actor_id)
        if f.action:
            query = query.where(ActivityRow.action == f.action)
        if f.resource_type:
            query = query.where(ActivityRow.resource_type == f.resource_type)
            if f.resource_id:
                query = query.where(ActivityRow.resource_id == f.resource_id)
        if f.start is not None:
            query = query.where(ActivityRow.created_at >= f.start)
        if f.end is not None:
            query = query.where(ActivityRow.created_at < f.end)
        return [_entry(row) for row in await self._s.scalars(query)]

    async def between(self, after_id: int, up_to_id: int, *, limit: int) -> list[ActivityEntry]:
        query = (
            select(ActivityRow)
            .where(ActivityRow.id > after_id, ActivityRow.id <= up_to_id)
            .order_by(ActivityRow.id)
            .limit(limit)
        )
        return [_entry(row) for row in await self._s.scalars(query)]
