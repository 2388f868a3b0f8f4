"""Monitoring: each replica's measured figures, the whole system's view of them, and client issues.

Every replica measures itself each tick (``measure``, given by the composition root), publishes what it
measured through the database, and reads back what the other live replicas published: so any replica
answers for all of them, and one that stopped publishing drops out after three ticks. If the database
cannot be reached, a replica still answers with its own figures, which then say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .activity import record_activity
from .errors import NotFound, PermissionDenied, Unavailable, Validator
from .model import Principal
from .ports import Clock, UnitOfWorkFactory

log = logging.getLogger("workspace.monitoring")

#: A replica that has not published for this many ticks is no longer shown.
LIVE_TICKS = 3
#: Published figures older than this are deleted (a replica that died without removing its row).
KEEP_REPORTS = timedelta(hours=1)

ISSUE_MESSAGE_MAX = 2000
ISSUE_LABEL_MAX = 100
ISSUE_CONTEXT_MAX = 10_000


@dataclass(frozen=True)
class RpcFigures:
    method: str
    calls: int
    calls_per_second: float
    p50_seconds: float
    p99_seconds: float
    error_rate: float
    server_error_rate: float


@dataclass(frozen=True)
class DatabaseFigures:
    kind: str
    reachable: bool
    query_seconds: float
    check_time: datetime
    error: str
    pool_size: int
    pool_in_use: int


@dataclass(frozen=True)
class ProcessFigures:
    cpu_percent: float
    memory_rss_bytes: int
    threads: int


@dataclass(frozen=True)
class ReplicaFigures:
    """What one replica measured at one tick."""

    replica_id: str
    instance_id: str
    version: str
    start_time: datetime
    report_time: datetime
    connected_people: int
    open_streams: dict[str, int]
    messages_per_minute: float
    events_per_second: float
    deliveries_per_second: float
    rpcs: tuple[RpcFigures, ...]
    database: DatabaseFigures
    process: ProcessFigures


@dataclass(frozen=True)
class Totals:
    live_replicas: int
    connected_people: int
    open_streams: int
    messages_per_minute: float
    events_per_second: float
    deliveries_per_second: float
    calls_per_second: float
    error_rate: float
    server_error_rate: float


@dataclass(frozen=True)
class SystemFigures:
    time: datetime
    replicas: tuple[ReplicaFigures, ...]
    totals: Totals


def total(replicas: tuple[ReplicaFigures, ...], connected_people: int) -> Totals:
    calls = sum(r.calls for replica in replicas for r in replica.rpcs)
    errors = sum(r.calls * r.error_rate for replica in replicas for r in replica.rpcs)
    server_errors = sum(r.calls * r.server_error_rate for replica in replicas for r in replica.rpcs)
    return Totals(
        live_replicas=len(replicas),
        connected_people=connected_people,
        open_streams=sum(sum(r.open_streams.values()) for r in replicas),
        # Every replica follows the same event log, so these agree: the freshest is the largest.
        messages_per_minute=max((r.messages_per_minute for r in replicas), default=0.0),
        events_per_second=max((r.events_per_second for r in replicas), default=0.0),
        deliveries_per_second=sum(r.deliveries_per_second for r in replicas),
        calls_per_second=sum(r.calls_per_second for replica in replicas for r in replica.rpcs),
        error_rate=errors / calls if calls else 0.0,
        server_error_rate=server_errors / calls if calls else 0.0,
    )


class ClientIssueKind(enum.Enum):
    ERROR = "error"
    FEEDBACK = "feedback"


@dataclass(frozen=True)
class ClientIssue:
    id: int
    kind: ClientIssueKind
    message: str
    client_version: str
    platform: str
    context: str
    reporter_id: int
    create_time: datetime
    resolve_time: datetime | None = None
    resolver_id: int | None = None


@dataclass(frozen=True)
class ClientIssuePage:
    issues: list[ClientIssue]
    next_after_key: int | None


def check_issue_text(v: Validator, *, message: str, client_version: str, platform: str, context: str) -> None:
    """The text fields of a reported issue, as stored: trimmed (but the context)."""
    message = message.strip()
    v.check(bool(message), "issue.message", "is required")
    v.check(len(message) <= ISSUE_MESSAGE_MAX, "issue.message", f"must be at most {ISSUE_MESSAGE_MAX} characters")
    for field, value in (("issue.client_version", client_version), ("issue.platform", platform)):
        v.check(len(value.strip()) <= ISSUE_LABEL_MAX, field, f"must be at most {ISSUE_LABEL_MAX} characters")
    v.check(len(context) <= ISSUE_CONTEXT_MAX, "issue.context", f"must be at most {ISSUE_CONTEXT_MAX} characters")


def _require_admin(actor: Principal, what: str) -> None:
    if not actor.is_admin:
        raise PermissionDenied(f"only administrators may {what}")


class Monitoring:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        measure: Callable[[], Awaitable[ReplicaFigures]],
        tick_seconds: float,
        presence_alive_since: Callable[[datetime], datetime],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._measure = measure
        self.tick_seconds = tick_seconds
        self._presence_alive_since = presence_alive_since
        self._latest: SystemFigures | None = None
        self._ticked = asyncio.Condition()
        self._stopping = False
        self._ticks = 0

    # --- figures -------------------------------------------------------------------------------------

    async def stats(self, actor: Principal) -> SystemFigures:
        """The latest view of the system (at most one tick old; measured now if there is none yet)."""
        _require_admin(actor, "see the server's figures")
        return self._latest or await self.tick()

    async def tick(self) -> SystemFigures:
        """Measure this replica, publish it, and read back every live replica."""
        mine = await self._measure()
        now = mine.report_time
        try:
            async with self._uow() as uow:
                await uow.replica_figures.save(mine)
                self._ticks += 1
                if self._ticks % 600 == 1:
                    await uow.replica_figures.delete_older_than(now - KEEP_REPORTS)
                await uow.commit()
            async with self._uow(read_only=True) as uow:
                live = await uow.replica_figures.reported_since(now - timedelta(seconds=LIVE_TICKS * self.tick_seconds))
                connected = await uow.presence.connected_people(alive_since=self._presence_alive_since(now))
        except Exception as e:  # the database is away: this replica still answers, and says so
            log.warning("cannot publish or read the replicas' figures", extra={"error": str(e)})
            unreachable = replace(mine.database, reachable=False, error=mine.database.error or str(e))
            mine = replace(mine, database=unreachable)
            live, connected = [mine], mine.connected_people
        others = [r for r in live if r.instance_id != mine.instance_id]
        replicas = tuple(sorted([mine, *others], key=lambda r: (r.replica_id, r.instance_id)))
        latest = self._latest = SystemFigures(time=now, replicas=replicas, totals=total(replicas, connected))
        async with self._ticked:
            self._ticked.notify_all()
        return latest

    async def after(self, actor: Principal, previous: SystemFigures, *, not_before: float) -> SystemFigures:
        """The first view newer than ``previous``, no sooner than ``not_before`` seconds from now (after three
        ticks with none, the latest there is). Ends with ``Unavailable`` as soon as this replica stops."""
        _require_admin(actor, "see the server's figures")
        async with self._ticked:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(not_before):
                    await self._ticked.wait_for(lambda: self._stopping)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_TICKS * self.tick_seconds):
                    await self._ticked.wait_for(
                        lambda: self._stopping or (self._latest is not None and self._latest.time > previous.time)
                    )
            if self._stopping:
                raise Unavailable("the server is shutting down; reconnect", reason="SERVER_SHUTTING_DOWN")
        return self._latest or previous

    async def stop(self) -> None:
        """This replica is stopping: every stats stream ends now."""
        self._stopping = True
        async with self._ticked:
            self._ticked.notify_all()

    async def withdraw(self, instance_id: str) -> None:
        """This replica is stopping: its figures go at once rather than after three ticks."""
        async with self._uow() as uow:
            await uow.replica_figures.delete(instance_id)
            await uow.commit()

    # --- client issues -------------------------------------------------------------------------------

    async def report_issue(
        self,
        actor: Principal,
        *,
        kind: ClientIssueKind,
        message: str,
        client_version: str,
        platform: str,
        context: str,
    ) -> ClientIssue:
        v = Validator()
        check_issue_text(v, message=message, client_version=client_version, platform=platform, context=context)
        v.raise_if_any()
        issue = ClientIssue(
            id=0,
            kind=kind,
            message=message.strip(),
            client_version=client_version.strip(),
            platform=platform.strip(),
            context=context,
            reporter_id=actor.user_id,
            create_time=self._clock(),
        )
        async with self._uow() as uow:
            issue = await uow.client_issues.add(issue)
            # The kind only: the message and context are the reporter's to say, and may be long.
            await record_activity(
                uow, actor.user, "client_issue.report", "client_issue", issue.id, issue.kind.value, issue.create_time
            )
            await uow.commit()
        log.info("client issue reported", extra={"issue": issue.id, "kind": kind.value, "user": actor.user_id})
        return issue

    async def list_issues(
        self, actor: Principal, *, after_key: int | None, show_resolved: bool, limit: int
    ) -> ClientIssuePage:
        _require_admin(actor, "read client issues")
        async with self._uow(read_only=True) as uow:
            issues = await uow.client_issues.page(before_id=after_key, show_resolved=show_resolved, limit=limit + 1)
        more = len(issues) > limit
        issues = issues[:limit]
        return ClientIssuePage(issues, issues[-1].id if more else None)

    async def resolve_issue(self, actor: Principal, issue_id: int) -> ClientIssue:
        _require_admin(actor, "resolve client issues")
        async with self._uow() as uow:
            issue = await uow.client_issues.get(issue_id)
            if issue is None:
                raise NotFound(f"client issue {issue_id} not found")
            if issue.resolve_time is not None:
                return issue
            resolved = replace(issue, resolve_time=self._clock(), resolver_id=actor.user_id)
            won = await uow.client_issues.resolve(resolved)
            if won:
                assert resolved.resolve_time is not None
                await record_activity(
                    uow, actor.user, "client_issue.resolve", "client_issue", issue_id, "", resolved.resolve_time
                )
            await uow.commit()
        if won:
            return resolved
        async with self._uow(read_only=True) as uow:  # another administrator resolved it meanwhile: theirs stands
            return await uow.client_issues.get(issue_id) or resolved
