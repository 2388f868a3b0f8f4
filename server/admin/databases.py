"""What every operator command needs: URLs checked, engines opened, revisions and contents read, clear errors."""

from __future__ import annotations

import functools
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..settings import SettingsError, database_url, sqlite_path
from ..storage.database import SQLITE_BUSY_TIMEOUT_MS
from ..storage.migrate import alembic_config, upgrade
from ..storage.models import Base

#: Seconds to wait for a PostgreSQL server to accept a connection before calling it unreachable.
CONNECT_TIMEOUT_SECONDS = 10
#: Tables that belong to the machinery, not to the data: never copied, never counted.
ALEMBIC_TABLE = "alembic_version"


class AdminError(Exception):
    """An expected failure: the command prints the message (no stack trace) and exits with status 2."""


class Database:
    """One database named on the command line: its URL as given, normalised, and safe to print."""

    def __init__(self, url: str, option: str) -> None:
        self.option = option
        try:
            self.url = database_url(url, asynchronous=False)
            self.display = make_url(url).render_as_string(hide_password=True)
        except (SettingsError, SQLAlchemyError):
            raise AdminError(
                f"{option}: {url!r} is not a database URL (sqlite:///path/to/file.db or postgresql://user@host/db)"
            ) from None
        self.given = url
        self.path = sqlite_path(self.url)
        self.sqlite = self.url.startswith("sqlite")
        if self.sqlite and self.path is None:
            raise AdminError(f"{option}: {url!r} is an in-memory SQLite database; name a file")

    def __str__(self) -> str:
        return self.display

    @property
    def kind(self) -> str:
        return "SQLite" if self.sqlite else "PostgreSQL"

    def must_exist(self) -> None:
        """An SQLite file that is not there would be created empty by connecting: say so instead."""
        if self.path is not None and not self.path.is_file():
            raise AdminError(f"{self.option}: no SQLite database at {self.path}")

    def engine(self, *, begin: str = "BEGIN") -> Engine:
        """A synchronous engine; on SQLite every transaction starts with ``begin`` (a snapshot, or the write lock)."""
        if self.sqlite:
            engine = create_engine(self.url, poolclass=NullPool)

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
                dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (pysqlite would not for reads)
                dbapi_connection.execute("PRAGMA foreign_keys=ON")
                dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

            @event.listens_for(engine, "begin")
            def _on_begin(connection):  # type: ignore[no-untyped-def]
                connection.exec_driver_sql(begin)

            return engine
        return create_engine(self.url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})

    @contextmanager
    def connect(self, *, begin: str = "BEGIN") -> Iterator[Connection]:
        """A connection; failing to reach the database is an ``AdminError`` that says which one and why."""
        engine = self.engine(begin=begin)
        try:
            try:
                connection = engine.connect()
            except DBAPIError as e:
                raise AdminError(f"{self.option}: cannot connect to {self}: {first_line(e)}") from None
            with connection:
                yield connection
        finally:
            engine.dispose()


def first_line(error: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and links."""
    original = getattr(error, "orig", None) or error
    return (str(original) or type(original).__name__).strip().splitlines()[0]


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite:///unused.db"))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def known_revision(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts().walk_revisions())


def revision_of(connection: Connection) -> str | None:
    """The Alembic revision the database is at; None when it has never been migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def table_names(connection: Connection) -> list[str]:
    return [name for name in inspect(connection).get_table_names() if not name.startswith("sqlite_")]


def count_rows(connection: Connection, name: str) -> int:
    return int(connection.scalar(select(func.count()).select_from(table(name))) or 0)


@functools.cache
def seeded_rows() -> dict[str, frozenset[tuple]]:
    """The rows the migrations themselves insert (the event counter at 0): a database holding only these is
    empty. Read from a throw-away migrated SQLite file, so a future migration that seeds a table is covered."""
    with tempfile.TemporaryDirectory(prefix="workspace-admin-") as folder:
        url = f"sqlite:///{Path(folder) / 'seed.db'}"
        upgrade(url)
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return {
                    model.name: frozenset(tuple(row) for row in connection.execute(select(model)))
                    for model in Base.metadata.sorted_tables
                }
        finally:
            engine.dispose()


def tables_holding_data(connection: Connection) -> list[str]:
    """Tables (besides Alembic's) with rows other than the ones the migrations insert."""
    seeded = seeded_rows()
    models = Base.metadata.tables
    found = []
    for name in table_names(connection):
        if name == ALEMBIC_TABLE or count_rows(connection, name) == 0:
            continue
        if name in models and seeded.get(name):
            rows = frozenset(tuple(row) for row in connection.execute(select(models[name])))
            if rows == seeded[name]:
                continue
        found.append(name)
    return found


def sqlite_header_ok(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(16) == b"SQLite format 3\x00"


def sqlite_revision(connection: sqlite3.Connection) -> str | None:
    """The revision of an SQLite database opened with the standard library; None without ``alembic_version``."""
    has_table = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (ALEMBIC_TABLE,)
    ).fetchone()
    if not has_table:
        return None
    row = connection.execute(f"SELECT version_num FROM {ALEMBIC_TABLE}").fetchone()
    return row[0] if row else None
