"""The command line: ``workspace-admin migrate-data | backup | restore`` (also ``python -m server.admin``).

Exit status: 0 done; 1 the copy finished but a table's row counts differ; 2 refused or failed, with a
message saying why (bad URL, unreachable database, wrong revision, data in the way) and nothing changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

from .backup import backup, restore
from .databases import AdminError, Database, first_line
from .migrate_data import DEFAULT_BATCH_SIZE, migrate_data

#: The largest ``--batch-size``: a batch is held in memory and sent as one statement.
MAX_BATCH_SIZE = 100_000


def _batch_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH_SIZE}")
    return size


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workspace-admin",
        description="Operator commands for a Workspace database. See docs/OPERATIONS.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    copy = commands.add_parser(
        "migrate-data",
        help="copy every table from one database to another (SQLite to PostgreSQL), ids and events kept",
        description="Copy every table from --from to --to in one transaction; the target is first migrated to "
        "the source's revision; ids continue after the copied ones. Stop every server writing to the source.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="the database to copy")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="the database to fill")
    copy.add_argument("--force", action="store_true", help="delete everything in the target first if it holds data")
    copy.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="rows per round trip (default %(default)s)",
    )

    save = commands.add_parser(
        "backup",
        help="a consistent copy of a live SQLite database",
        description="Copy an SQLite database with SQLite's online backup API; safe while the server writes.",
    )
    save.add_argument("--database", required=True, metavar="URL", help="sqlite:///path/to/workspace.db")
    save.add_argument("--to", dest="file", required=True, type=Path, metavar="FILE", help="the backup file")
    save.add_argument("--force", action="store_true", help="replace FILE if it exists")

    back = commands.add_parser(
        "restore",
        help="replace an SQLite database with a backup (stop the server first)",
        description="Replace the database with a backup, atomically. The server must be stopped.",
    )
    back.add_argument("--database", required=True, metavar="URL", help="sqlite:///path/to/workspace.db")
    back.add_argument("--from", dest="file", required=True, type=Path, metavar="FILE", help="the backup file")
    back.add_argument("--force", action="store_true", help="replace a database that holds data")
    return parser


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "migrate-data":
            source, target = Database(args.source, "--from"), Database(args.target, "--to")
            ok = migrate_data(source, target, force=args.force, batch_size=args.batch_size, say=_say)
            return 0 if ok else 1
        database = Database(args.database, "--database")
        if args.command == "backup":
            backup(database, args.file, force=args.force, say=_say)
        else:
            restore(database, args.file, force=args.force, say=_say)
        return 0
    except AdminError as e:
        print(f"workspace-admin {args.command}: {e}", file=sys.stderr)
        return 2
    except DBAPIError as e:
        print(f"workspace-admin {args.command}: database error: {first_line(e)}", file=sys.stderr)
        return 2
    except CommandError as e:  # Alembic: a revision it cannot find or apply
        print(f"workspace-admin {args.command}: migration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workspace-admin {args.command}: interrupted (a copy in progress is rolled back)", file=sys.stderr)
        return 130
