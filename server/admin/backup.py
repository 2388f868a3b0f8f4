"""``workspace-admin backup`` and ``restore``: SQLite files, copied with SQLite's online backup API.

The backup runs in one step (``Connection.backup`` with ``pages=-1``): it reads one snapshot while the server
keeps writing (in WAL mode readers never block writers), and it never restarts, which a step-by-step backup
does each time another connection writes. Both commands write a temporary file beside the destination, check
it, then ``os.replace`` it into place, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from ..storage.database import SQLITE_BUSY_TIMEOUT_MS
from .databases import (
    AdminError,
    Database,
    head_revision,
    known_revision,
    sqlite_header_ok,
    sqlite_revision,
    tables_holding_data,
)

Print = Callable[[str], None]


def _sqlite_only(database: Database, command: str) -> Path:
    if not database.sqlite:
        raise AdminError(
            f"--database: {command} handles SQLite files; for PostgreSQL use pg_dump -Fc and pg_restore "
            "(docs/OPERATIONS.md, section PostgreSQL)"
        )
    assert database.path is not None
    return database.path


def _open(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open an existing file without ever creating one."""
    mode = "ro" if read_only else "rw"
    connection = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    connection.isolation_level = None
    return connection


def _integrity(connection: sqlite3.Connection) -> str:
    rows = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


@contextmanager
def _replacing(destination: Path) -> Iterator[Path]:
    """A temporary path beside ``destination``, moved onto it when the block succeeds, removed otherwise."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with temporary.open("rb+") as file:
            os.fsync(file.fileno())
        for suffix in ("-wal", "-shm", "-journal"):  # the old file's, which would be read with the new one
            Path(f"{destination}{suffix}").unlink(missing_ok=True)
        os.replace(temporary, destination)
        directory = os.open(destination.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)


def _copy(source: sqlite3.Connection, temporary: Path) -> None:
    """The whole of ``source`` into ``temporary`` in one step, then made a self-contained file (no WAL)."""
    with closing(sqlite3.connect(temporary)) as copy:
        source.backup(copy)  # pages=-1: one snapshot, no restart when the server writes meanwhile
        copy.isolation_level = None
        copy.execute("PRAGMA journal_mode=DELETE")
        problem = _integrity(copy)
        if problem != "ok":
            raise AdminError(f"the copy fails PRAGMA integrity_check ({problem}); nothing was replaced")


def backup(database: Database, destination: Path, *, force: bool, say: Print) -> None:
    path = _sqlite_only(database, "backup")
    database.must_exist()
    if destination.resolve() == path.resolve():
        raise AdminError("--to names the database itself")
    if destination.exists() and not force:
        raise AdminError(f"--to: {destination} exists; pass --force to replace it, or name another file")
    try:
        with closing(_open(path)) as source:
            revision = sqlite_revision(source)
            if revision is None:
                raise AdminError(f"--database: {path} is not a Workspace database (no migration revision)")
            with _replacing(destination) as temporary:
                _copy(source, temporary)
    except sqlite3.DatabaseError as e:
        raise AdminError(f"backup of {path} failed: {e}") from None
    size = destination.stat().st_size
    say(f"backed up {path} to {destination}: {size:,} bytes, revision {revision}, integrity_check ok")


def restore(database: Database, backup_file: Path, *, force: bool, say: Print) -> None:
    path = _sqlite_only(database, "restore")
    if not backup_file.is_file():
        raise AdminError(f"--from: no file at {backup_file}")
    if not sqlite_header_ok(backup_file):
        raise AdminError(f"--from: {backup_file} is not an SQLite database")
    try:
        with closing(_open(backup_file, read_only=True)) as source:
            revision = sqlite_revision(source)
            if revision is None:
                raise AdminError(f"--from: {backup_file} is not a Workspace backup (no migration revision)")
            if not known_revision(revision):
                raise AdminError(f"--from: {backup_file} is at revision {revision}, which this version does not know")
            problem = _integrity(source)
            if problem != "ok":
                raise AdminError(f"--from: {backup_file} fails PRAGMA integrity_check: {problem}")
            if path.exists():
                _check_replaceable(database, path, force, say)
            with _replacing(path) as temporary:
                _copy(source, temporary)
    except sqlite3.DatabaseError as e:
        raise AdminError(f"restore into {path} failed: {e}") from None
    say(f"restored {backup_file} into {path} (revision {revision})")
    if revision != head_revision():
        say(f"the backup is at revision {revision}: run `make migrate` on it before starting the server")


def _check_replaceable(database: Database, path: Path, force: bool, say: Print) -> None:
    """An existing database is replaced only with --force, and only when no process has it open."""
    if path.stat().st_size == 0:
        return
    if not sqlite_header_ok(path):
        if not force:
            raise AdminError(f"--database: {path} exists and is not an SQLite database; pass --force to replace it")
        say(f"--force: replacing {path}, which is not an SQLite database")
        return
    with database.connect() as connection:
        holding = tables_holding_data(connection)
    if holding and not force:
        raise AdminError(f"--database: {path} already holds data (in {', '.join(holding)}); pass --force to replace it")
    try:
        with closing(_open(path)) as existing:
            existing.execute("PRAGMA busy_timeout=0")
            # leaving WAL mode needs the only connection to the file: it fails while a server has it open
            existing.execute("PRAGMA journal_mode=DELETE").fetchall()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise AdminError(f"--database: {path} is in use: stop the server first") from None
        raise
    if holding:
        say(f"--force: replacing {path} (its {', '.join(holding)} held rows)")
