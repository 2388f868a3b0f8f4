"""Engines for SQLite (aiosqlite) and PostgreSQL (psycopg 3, async)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..settings import sqlite_path

#: How long an SQLite writer waits for another writer's lock before failing, milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Execution option marking a connection whose transactions will write (see ``_sqlite_begin``).
WRITE_OPTION = "workspace_write"


def create_engine(url: str, *, pool_size: int = 5, pooler: str = "none") -> AsyncEngine:
    """An async engine for ``url`` (already normalised to aiosqlite or psycopg).

    ``pooler="transaction"``: PostgreSQL is reached through a pooler in transaction mode (PgBouncer), where
    consecutive transactions of one connection may run on different server connections. psycopg prepares a
    statement on the server after it ran it five times, and would then execute a prepared statement that the
    server connection it lands on has never seen ("prepared statement ... does not exist"): preparing is off.
    """
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        configure_sqlite(engine.sync_engine)
        return engine
    # prepare_threshold=None: psycopg never prepares (its default, 5, prepares a statement's fifth run).
    connect_args = {"prepare_threshold": None} if pooler == "transaction" else {}
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
    )


def configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and explicit BEGIN so writers take the lock up front.

    In WAL mode a transaction that reads and then writes fails at once (no busy
    wait) if another connection wrote in between. Writing units of work
    therefore begin with ``BEGIN IMMEDIATE``, which waits its turn instead.

    Read-only units of work open no transaction: each statement runs in
    SQLite's autocommit mode and sees everything committed before it started,
    which is what PostgreSQL's default READ COMMITTED level gives a reading
    transaction, so both databases answer reads alike. It also spares every
    read a BEGIN, which through aiosqlite costs three round trips to its thread.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


#: A database that takes longer than this to answer ``SELECT 1`` counts as unreachable.
PROBE_TIMEOUT_SECONDS = 2.0


async def probe(engine: AsyncEngine) -> tuple[bool, float, str]:
    """Whether ``SELECT 1`` gets an answer in time: (reachable, round trip in seconds, why not)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as e:  # any failure means unreachable, and says why
        return False, time.perf_counter() - started, (str(e) or type(e).__name__).splitlines()[0][:200]
    return True, time.perf_counter() - started, ""


def pool_usage(engine: AsyncEngine) -> tuple[int, int]:
    """(connections the pool keeps, of which checked out now)."""
    pool = engine.pool
    size = pool.size() if hasattr(pool, "size") else 0
    in_use = pool.checkedout() if hasattr(pool, "checkedout") else 0
    return size, in_use
