"""``workspace-admin migrate-data``: copy every table from one database to another, ids and event ids kept.

The copy reads the source in one transaction (one snapshot) and writes the target in one transaction: the
target ends up holding all of the source or, when anything fails, what it held before. Tables go in
foreign-key order (``metadata.sorted_tables``), each in primary-key order, in batches. Values pass through
the models' column types, so an SQLite timestamp (stored naive, in UTC) arrives on PostgreSQL as the same
instant, with its zone. Afterwards every generated id (a PostgreSQL sequence, SQLite's ``sqlite_sequence``)
continues after the largest id the source ever handed out, and the rows are counted on both sides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Table, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from ..storage.migrate import upgrade
from ..storage.models import Base
from .databases import (
    ALEMBIC_TABLE,
    AdminError,
    Database,
    count_rows,
    first_line,
    head_revision,
    known_revision,
    revision_of,
    table_names,
    tables_holding_data,
)

#: Rows read and written per round trip unless ``--batch-size`` says otherwise.
DEFAULT_BATCH_SIZE = 1000
#: A table that takes longer than this to copy shows how far it got this often.
PROGRESS_SECONDS = 2.0

Print = Callable[[str], None]


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


def migrate_data(source: Database, target: Database, *, force: bool, batch_size: int, say: Print) -> bool:
    """Copy ``source`` into ``target``; print progress and the row-count check; True when every count matches."""
    if source.url == target.url:
        raise AdminError("--from and --to name the same database")
    source.must_exist()
    head = head_revision()
    with source.connect() as reading:
        if not source.sqlite:  # on SQLite, BEGIN already reads one snapshot until the end
            reading.execution_options(isolation_level="REPEATABLE READ")
        with reading.begin():  # one snapshot of the source for the whole copy
            revision = _check_source(source, reading, head)
            _prepare_target(target, revision)
            say(f"source: {source} ({source.kind}, revision {revision})")
            say(f"target: {target} ({target.kind}, migrated to revision {revision})")
            with target.connect(begin="BEGIN IMMEDIATE") as writing:
                try:
                    with writing.begin():
                        _refuse_data(target, writing, force, say)
                        _clear(writing)
                        source_counts = _copy_tables(reading, writing, batch_size, say)
                        _continue_ids(reading, writing, say)
                except DBAPIError as e:
                    raise AdminError(
                        f"the copy failed and was rolled back, the target holds what it held before: {first_line(e)}"
                    ) from None
    with target.connect() as checking:
        counts = [TableCount(name, source_counts[name], count_rows(checking, name)) for name in source_counts]
    return _report(counts, say)


def _check_source(source: Database, connection: Connection, head: str) -> str:
    revision = revision_of(connection)
    if revision is None:
        raise AdminError(f"--from: {source} is not a Workspace database (it has no {ALEMBIC_TABLE} table)")
    if not known_revision(revision):
        raise AdminError(
            f"--from: {source} is at revision {revision}, which this version does not know: "
            "run the workspace-admin of the version that wrote it"
        )
    if revision != head:
        raise AdminError(
            f"--from: {source} is at revision {revision}, not the newest ({head}): migrate it first "
            f"(`make migrate` with WORKSPACE_DATABASE_URL={source.given}), then copy it"
        )
    present = set(table_names(connection))
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            raise AdminError(f"--from: {source} has no table {table.name!r} although it is at revision {revision}")
        columns = {column["name"] for column in inspect(connection).get_columns(table.name)}
        if columns != set(table.columns.keys()):
            raise AdminError(
                f"--from: the table {table.name!r} of {source} has the columns {sorted(columns)}, "
                f"not the ones revision {revision} makes ({sorted(table.columns.keys())})"
            )
    unknown = present - set(Base.metadata.tables) - {ALEMBIC_TABLE}
    if unknown:
        raise AdminError(f"--from: {source} has tables the models do not know, which would be lost: {sorted(unknown)}")
    return revision


def _prepare_target(target: Database, revision: str) -> None:
    """Migrate the target to the source's revision (a new database gets the whole schema)."""
    if target.path is not None:
        target.path.parent.mkdir(parents=True, exist_ok=True)
    with target.connect() as connection:
        current = revision_of(connection)
    if current is not None and not known_revision(current):
        raise AdminError(f"--to: {target} is at revision {current}, which this version does not know")
    try:
        upgrade(target.given, revision)
    except DBAPIError as e:
        raise AdminError(f"--to: migrating {target} failed: {first_line(e)}") from None


def _refuse_data(target: Database, connection: Connection, force: bool, say: Print) -> None:
    holding = tables_holding_data(connection)
    if not holding:
        return
    if not force:
        raise AdminError(
            f"--to: {target} already holds data ({_some(holding)}); nothing was copied. "
            "Pass --force to delete everything in it first"
        )
    say(f"--force: deleting everything in the target first ({_some(holding)})")


def _some(tables: list[str]) -> str:
    listed = ", ".join(tables[:4]) + (", ..." if len(tables) > 4 else "")
    return f"{len(tables)} {'table has' if len(tables) == 1 else 'tables have'} rows: {listed}"


def _clear(connection: Connection) -> None:
    """Empty every table, children before parents (the migrations' own rows too: the copy brings its own)."""
    for table in reversed(Base.metadata.sorted_tables):
        connection.execute(table.delete())


def _copy_tables(reading: Connection, writing: Connection, batch_size: int, say: Print) -> dict[str, int]:
    tables = Base.metadata.sorted_tables
    width = max(len(table.name) for table in tables)
    counts: dict[str, int] = {}
    for index, table in enumerate(tables, 1):
        total = count_rows(reading, table.name)
        counts[table.name] = total
        label = f"[{index:>2}/{len(tables)}] {table.name:<{width}}"
        copied, shown = 0, time.monotonic()
        query = select(table).order_by(*table.primary_key.columns)
        result = reading.execute(query, execution_options={"yield_per": batch_size})
        for rows in result.partitions():
            writing.execute(table.insert(), [dict(row._mapping) for row in rows])
            copied += len(rows)
            if copied < total and time.monotonic() - shown >= PROGRESS_SECONDS:
                say(f"{label} {copied:>10,} of {total:,} rows ({copied * 100 // total}%)")
                shown = time.monotonic()
        say(f"{label} {copied:>10,} {'row' if copied == 1 else 'rows'} copied")
    return counts


def _generated_id(table: Table) -> Column | None:
    """The column whose values the database generates (an autoincrement primary key), if the table has one."""
    return table.autoincrement_column  # type: ignore[return-value]


def _continue_ids(reading: Connection, writing: Connection, say: Print) -> None:
    """Let every generated id continue after the largest one the source ever handed out (SQLite never reuses a
    deleted row's id in these tables, so that mark can be above the largest id still present)."""
    marks = []
    for table in Base.metadata.sorted_tables:
        column = _generated_id(table)
        if column is None:
            continue
        largest = int(writing.scalar(select(func.max(column))) or 0)
        handed_out = max(largest, _high_water_mark(reading, table, column))
        if writing.dialect.name == "postgresql":
            sequence = writing.scalar(text("SELECT pg_get_serial_sequence(:table, :column)"), _names(table, column))
            if sequence is None:
                raise AdminError(f"--to: {table.name}.{column.name} has no sequence although ids are generated")
            value, called = (handed_out, True) if handed_out > 0 else (1, False)
            writing.execute(
                text("SELECT setval(CAST(:sequence AS regclass), :value, :called)"),
                {"sequence": sequence, "value": value, "called": called},
            )
        elif table.dialect_options["sqlite"]["autoincrement"]:
            writing.execute(text("DELETE FROM sqlite_sequence WHERE name = :table"), {"table": table.name})
            writing.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :seq)"),
                {"table": table.name, "seq": handed_out},
            )
        marks.append(f"{table.name} {handed_out:,}")
    say(f"generated ids continue after the largest the source handed out: {', '.join(marks)}")


def _names(table: Table, column: Column) -> dict[str, str]:
    return {"table": table.name, "column": column.name}


def _high_water_mark(connection: Connection, table: Table, column: Column) -> int:
    """The largest id the source's generator handed out, deleted rows included (0 when it cannot tell)."""
    if connection.dialect.name == "sqlite":
        if not table.dialect_options["sqlite"]["autoincrement"]:
            return 0
        seq = connection.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table.name})
        return int(seq or 0)
    sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:table, :column)"), _names(table, column))
    if sequence is None:
        return 0
    # pg_get_serial_sequence answers a name already quoted as the sequence functions and FROM want it
    last_value, is_called = connection.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    return int(last_value) if is_called else int(last_value) - 1


def _report(counts: list[TableCount], say: Print) -> bool:
    width = max(len(count.table) for count in counts)
    say("")
    say("row counts, source and target:")
    say(f"  {'table':<{width}} {'source':>10} {'target':>10}")
    for count in counts:
        verdict = "OK" if count.ok else "MISMATCH"
        say(f"  {count.table:<{width}} {count.source:>10,} {count.target:>10,}  {verdict}")
    bad = [count.table for count in counts if not count.ok]
    if bad:
        say(f"MISMATCH in {len(bad)} of {len(counts)} tables: {', '.join(bad)}")
        return False
    say(f"all {len(counts)} tables match; start the servers with WORKSPACE_DATABASE_URL set to the target")
    return True
