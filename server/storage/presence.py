"""Presence rows: what each person last published, and the open streams of every server process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.model import PresenceRecord, PresenceState
from .models import PresenceConnectionRow, PresenceRow


class SqlPresenceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get_many(self, user_ids: list[int]) -> dict[int, PresenceRecord]:
        if not user_ids:
            return {}
        rows = await self._s.scalars(
            select(PresenceRow).where(PresenceRow.user_id.in_(user_ids)).execution_options(populate_existing=True)
        )
        return {
            row.user_id: PresenceRecord(
                row.user_id, PresenceState(row.state), row.away, row.status_text, row.last_seen_at, row.changed_at
            )
            for row in rows
        }

    async def save(self, record: PresenceRecord) -> None:
        await self._s.merge(
            PresenceRow(
                user_id=record.user_id,
                state=record.state.value,
                away=record.away,
                status_text=record.status_text,
                last_seen_at=record.last_seen_at,
                changed_at=record.changed_at,
            )
        )
        await self._s.flush()

    async def set_streams(self, instance: str, user_id: int, streams: int, now: datetime) -> None:
        key = (PresenceConnectionRow.instance == instance, PresenceConnectionRow.user_id == user_id)
        if streams <= 0:
            await self._s.execute(delete(PresenceConnectionRow).where(*key))
            return
        await self._s.merge(
            PresenceConnectionRow(instance=instance, user_id=user_id, streams=streams, refreshed_at=now)
        )
        await self._s.flush()

    async def refresh(self, instance: str, now: datetime) -> None:
        await self._s.execute(
            update(PresenceConnectionRow).where(PresenceConnectionRow.instance == instance).values(refreshed_at=now)
        )

    async def forget_instance(self, instance: str) -> None:
        await self._s.execute(delete(PresenceConnectionRow).where(PresenceConnectionRow.instance == instance))

    async def live_streams(self, user_id: int, *, alive_since: datetime) -> int:
        total = await self._s.scalar(
            select(func.sum(PresenceConnectionRow.streams)).where(
                PresenceConnectionRow.user_id == user_id, PresenceConnectionRow.refreshed_at >= alive_since
            )
        )
        return int(total or 0)

    async def connected_people(self, *, alive_since: datetime) -> int:
        count = await self._s.scalar(
            select(func.count(func.distinct(PresenceConnectionRow.user_id))).where(
                PresenceConnectionRow.streams > 0, PresenceConnectionRow.refreshed_at >= alive_since
            )
        )
        return int(count or 0)

    async def not_offline(self) -> list[int]:
        return list(
            await self._s.scalars(select(PresenceRow.user_id).where(PresenceRow.state != PresenceState.OFFLINE.value))
        )
