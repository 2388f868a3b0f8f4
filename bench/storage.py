"""What one database read costs, layer by layer: the server's unit of work, SQLAlchemy Core, the bare driver.

    .venv/bin/python bench/storage.py [--seconds 5] [--concurrency 50] [--database-url URL]

``bench/unary.py`` shows that a call that reads the database (``GetUser``) is far slower than one that
does not (``WhoAmI``). This bench finds where that time goes, in one process and without gRPC: the same
primary-key read of one user, ``--concurrency`` at a time for ``--seconds``, through

1. the server's own read-only unit of work and repository (``SqlUnitOfWorkFactory``, ``users.get``),
   exactly what ``GetUser`` runs;
2. SQLAlchemy Core on the same engine (``engine.connect()`` and one ``select``);
3. the bare async driver (aiosqlite, or psycopg 3's ``AsyncConnection``), with as many connections as
   the engine's pool and one query per read.

On SQLite it also counts the round trips each read makes to aiosqlite's worker thread, the usual cost
of async SQLite. It prints reads per second, wall time and CPU time per read. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from _common import ROOT, bench_database, is_postgres, machine

sys.path[:0] = [str(ROOT), str(ROOT / "generated")]

from sqlalchemy import select  # noqa: E402

from server.domain.model import Role  # noqa: E402
from server.settings import database_url  # noqa: E402
from server.storage.database import create_engine  # noqa: E402
from server.storage.migrate import upgrade  # noqa: E402
from server.storage.models import UserRow  # noqa: E402
from server.storage.unit_of_work import SqlUnitOfWorkFactory  # noqa: E402

POOL_SIZE = 5  # the server's default WORKSPACE_DB_POOL_SIZE
USER_SQL = "SELECT * FROM users WHERE id = {}"


async def measure(read: Callable[[], Awaitable[object]], concurrency: int, seconds: float) -> tuple[int, float, float]:
    """(reads, wall seconds, CPU seconds) for ``concurrency`` loops of ``read`` over ``seconds``."""
    await read()  # warm: connections opened, statements compiled
    count = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await read()
            count += 1

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return count, time.perf_counter() - wall, time.process_time() - cpu


@contextlib.asynccontextmanager
async def driver_pool(url: str, size: int) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    """``size`` bare driver connections shared through a queue; yields ``read(user_id)``."""
    pool: asyncio.Queue[object] = asyncio.Queue()
    if is_postgres(url):
        import psycopg

        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        connections = [await psycopg.AsyncConnection.connect(conninfo, autocommit=True) for _ in range(size)]

        async def run(conn: object, sql: str) -> object:
            cursor = await conn.execute(sql)  # type: ignore[attr-defined]
            return await cursor.fetchone()

    else:
        import aiosqlite

        path = url.split(":///", 1)[1]
        connections = [await aiosqlite.connect(path, isolation_level=None) for _ in range(size)]

        async def run(conn: object, sql: str) -> object:
            async with conn.execute(sql) as cursor:  # type: ignore[attr-defined]
                return await cursor.fetchone()

    for conn in connections:
        pool.put_nowait(conn)

    async def read(user_id: int) -> object:
        conn = await pool.get()
        try:
            return await run(conn, USER_SQL.format(int(user_id)))
        finally:
            pool.put_nowait(conn)

    try:
        yield read
    finally:
        for conn in connections:
            await conn.close()  # type: ignore[attr-defined]


def count_aiosqlite_round_trips() -> Counter[str]:
    """Count every call aiosqlite hands to its worker thread (a wrapper that counts, then calls through)."""
    import aiosqlite.core

    counts: Counter[str] = Counter()
    original = aiosqlite.core.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts[getattr(fn, "__name__", "call")] += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]
    return counts


async def run(args: argparse.Namespace, url: str, log: Callable[[str], None]) -> None:
    upgrade(url)
    engine = create_engine(database_url(url, asynchronous=True), pool_size=POOL_SIZE)
    uow = SqlUnitOfWorkFactory(engine)
    now = datetime.now(UTC)
    async with uow() as work:
        user = await work.users.add(
            username="bench", display_name="Bench", role=Role.USER, password_hash="x" * 90, now=now
        )
        await work.commit()
    table = UserRow.__table__

    async def unit_of_work() -> object:
        async with uow(read_only=True) as work:
            return await work.users.get(user.id)

    async def core() -> object:
        async with engine.connect() as conn:
            return (await conn.execute(select(table).where(table.c.id == user.id))).first()

    round_trips = None if is_postgres(url) else count_aiosqlite_round_trips()
    rows = []
    async with driver_pool(database_url(url, asynchronous=True), POOL_SIZE) as bare:
        for name, read in (
            ("unit of work (server)", unit_of_work),
            ("SQLAlchemy Core", core),
            ("bare driver", lambda: bare(user.id)),
        ):
            trips = ""
            if round_trips is not None:
                await read()
                round_trips.clear()
                await read()
                trips = str(sum(round_trips.values()))
            reads, wall, cpu = await measure(read, args.concurrency, args.seconds)
            rows.append((name, reads / wall, wall / reads * 1e6, cpu / reads * 1e6, trips))
            log(f"{name}: {reads / wall:.0f} reads/s")
    await engine.dispose()
    print()
    head = f"{'path':<24} {'reads/s':>9} {'wall us/read':>13} {'cpu us/read':>12} {'thread trips':>13}"
    print(head)
    print("-" * len(head))
    for name, rate, wall_us, cpu_us, trips in rows:
        print(f"{name:<24} {rate:>9.0f} {wall_us:>13.0f} {cpu_us:>12.0f} {trips:>13}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per path (default 5)")
    parser.add_argument("--concurrency", type=int, default=50, help="reads in flight (default 50)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file; PostgreSQL gets a schema of its own")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    info = machine()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}")
    log(f"load: {args.concurrency} reads in flight, {args.seconds:g} s per path, pool of {POOL_SIZE} connections")
    with bench_database(args.database_url, "workspace-bench-", log) as (url, _workdir):
        log(f"database: {url.split('://', 1)[0]}")
        asyncio.run(run(args, url, log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
