"""The unit of work: one transaction per use case, rolled back unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .chat import SqlConversationRepository, SqlEventLog, SqlMessageRepository
from .database import WRITE_OPTION
from .repositories import SqlLoginThrottleRepository, SqlSessionRepository, SqlUserRepository


class SqlUnitOfWork:
    def __init__(self, factory: async_sessionmaker[AsyncSession], *, read_only: bool = False) -> None:
        self._factory = factory
        self._read_only = read_only

    async def __aenter__(self) -> SqlUnitOfWork:
        self._session = self._factory()
        self.users = SqlUserRepository(self._session)
        self.sessions = SqlSessionRepository(self._session)
        self.login_throttle = SqlLoginThrottleRepository(self._session)
        self.conversations = SqlConversationRepository(self._session)
        self.messages = SqlMessageRepository(self._session)
        self.events = SqlEventLog(self._session)
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
        await self._session.commit()


class SqlUnitOfWorkFactory:
    """``factory()`` for a writing unit of work, ``factory(read_only=True)`` for a reading one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._write = async_sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        self._read = async_sessionmaker(engine, expire_on_commit=False)

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._read if read_only else self._write, read_only=read_only)
