"""Monitoring rows: each server process's last published figures (as JSON), and client issues."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.monitoring import (
    ClientIssue,
    ClientIssueKind,
    DatabaseFigures,
    ProcessFigures,
    ReplicaFigures,
    RpcFigures,
)
from .models import ClientIssueRow, ReplicaFiguresRow

_TIMES = ("start_time", "report_time")


def figures_to_json(figures: ReplicaFigures) -> str:
    data = asdict(figures)
    for name in _TIMES:
        data[name] = data[name].isoformat()
    data["database"]["check_time"] = figures.database.check_time.isoformat()
    return json.dumps(data, separators=(",", ":"))


def figures_from_json(text: str) -> ReplicaFigures:
    data = json.loads(text)
    database = data.pop("database")
    database["check_time"] = datetime.fromisoformat(database["check_time"])
    return ReplicaFigures(
        **{k: v for k, v in data.items() if k not in (*_TIMES, "rpcs", "process")},
        start_time=datetime.fromisoformat(data["start_time"]),
        report_time=datetime.fromisoformat(data["report_time"]),
        rpcs=tuple(RpcFigures(**r) for r in data["rpcs"]),
        database=DatabaseFigures(**database),
        process=ProcessFigures(**data["process"]),
    )


class SqlReplicaFiguresRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def save(self, figures: ReplicaFigures) -> None:
        # Only this process writes its row: merge (read, then insert or update) cannot race.
        await self._s.merge(
            ReplicaFiguresRow(
                instance_id=figures.instance_id,
                replica_id=figures.replica_id,
                reported_at=figures.report_time,
                figures=figures_to_json(figures),
            )
        )
        await self._s.flush()

    async def reported_since(self, since: datetime) -> list[ReplicaFigures]:
        rows = await self._s.scalars(select(ReplicaFiguresRow.figures).where(ReplicaFiguresRow.reported_at >= since))
        return [figures_from_json(text) for text in rows]

    async def delete(self, instance_id: str) -> None:
        await self._s.execute(delete(ReplicaFiguresRow).where(ReplicaFiguresRow.instance_id == instance_id))

    async def delete_older_than(self, before: datetime) -> None:
        await self._s.execute(delete(ReplicaFiguresRow).where(ReplicaFiguresRow.reported_at < before))


def _issue(row: ClientIssueRow) -> ClientIssue:
    return ClientIssue(
        id=row.id,
        kind=ClientIssueKind(row.kind),
        message=row.message,
        client_version=row.client_version,
        platform=row.platform,
        context=row.context,
        reporter_id=row.reporter_id or 0,
        create_time=row.created_at,
        resolve_time=row.resolved_at,
        resolver_id=row.resolver_id,
    )


class SqlClientIssueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, issue: ClientIssue) -> ClientIssue:
        row = ClientIssueRow(
            kind=issue.kind.value,
            message=issue.message,
            client_version=issue.client_version,
            platform=issue.platform,
            context=issue.context,
            reporter_id=issue.reporter_id,
            created_at=issue.create_time,
        )
        self._s.add(row)
        await self._s.flush()
        return _issue(row)

    async def get(self, issue_id: int) -> ClientIssue | None:
        row = await self._s.get(ClientIssueRow, issue_id)
        return None if row is None else _issue(row)

    async def page(self, *, before_id: int | None, show_resolved: bool, limit: int) -> list[ClientIssue]:
        query = select(ClientIssueRow).order_by(ClientIssueRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(ClientIssueRow.id < before_id)
        if not show_resolved:
            query = query.where(ClientIssueRow.resolved_at.is_(None))
        return [_issue(row) for row in await self._s.scalars(query)]

    async def resolve(self, issue: ClientIssue) -> bool:
        # Only an open issue: of two administrators resolving at once, the first to commit wins.
        done = await self._s.execute(
            update(ClientIssueRow)
            .where(ClientIssueRow.id == issue.id, ClientIssueRow.resolved_at.is_(None))
            .values(resolved_at=issue.resolve_time, resolver_id=issue.resolver_id)
        )
        return done.rowcount == 1
