"""The unit of work: one transaction per use case, rolled back unless committed."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .activity import SqlActivityRepository
from .agenda import SqlAgendaRepository
from .chat import SqlConversationRepository, SqlEventLog, SqlMessageRepository
from .database import WRITE_OPTION
from .lots import SqlLotItemRepository, SqlLotRepository
from .monitoring import SqlClientIssueRepository, SqlReplicaFiguresRepository
from .presence import SqlPresenceRepository
from .repositories import SqlLoginThrottleRepository, SqlSessionRepository, SqlUserRepository
from .shortcuts import SqlShortcutCategoryRepository, SqlShortcutRepository

#: The PostgreSQL channel on which a commit that wrote events wakes every replica's event hub.
EVENTS_CHANNEL = "workspace_events"


def _no_one_to_wake() -> None:
    pass


class SqlUnitOfWork:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        read_only: bool,
        postgres: bool,
        events_committed: Callable[[], None],
    ) -> None:
        self._factory = factory
        self._read_only = read_only
        self._postgres = postgres
        self._events_committed = events_committed

    async def __aenter__(self) -> SqlUnitOfWork:
        self._session = self._factory()
        self.users = SqlUserRepository(self._session)
        self.sessions = SqlSessionRepository(self._session)
        self.login_throttle = SqlLoginThrottleRepository(self._session)
        self.conversations = SqlConversationRepository(self._session)
        self.messages = SqlMessageRepository(self._session)
        self.presence = SqlPresenceRepository(self._session)
        self.events = SqlEventLog(self._session)
        self.replica_figures = SqlReplicaFiguresRepository(self._session)
        self.client_issues = SqlClientIssueRepository(self._session)
        self.shortcut_categories = SqlShortcutCategoryRepository(self._session)
        self.shortcuts = SqlShortcutRepository(self._session)
        self.activity = SqlActivityRepository(self._session)
        self.agenda = SqlAgendaRepository(self._session)
        self.lots = SqlLotRepository(self._session)
        self.lot_items = SqlLotItemRepository(self._session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._session.rollback()  # a no-op after commit(); undoes anything uncommitted
        finally:
            await self._session.close()

    async def commit(self) -> None:
        if self._read_only:  # on SQLite a reading unit has no transaction to commit (see configure_sqlite)
            raise RuntimeError("a read-only unit of work cannot commit; use factory() to write")
        wrote_events = self.events.appended
        if wrote_events and self._postgres:
            # Delivered to every LISTENing replica when (and only if) this transaction commits.
            await self._session.execute(text(f"NOTIFY {EVENTS_CHANNEL}"))
        await self._session.commit()
        if wrote_events:
            self._events_committed()  # this replica's streams need not wait for the notification


class SqlUnitOfWorkFactory:
    """``factory()`` for a writing unit of work, ``factory(read_only=True)`` for a reading one.

    ``events_committed`` is called after every commit that appended events (the event hub's wake-up).
    """

    def __init__(self, engine: AsyncEngine, events_committed: Callable[[], None] = _no_one_to_wake) -> None:
        self._write = async_sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._postgres = engine.dialect.name == "postgresql"
        self.events_committed = events_committed

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self._read if read_only else self._write,
            read_only=read_only,
            postgres=self._postgres,
            events_committed=self.events_committed,
        )
