"""Fresh databases for the tests: an SQLite file, or a PostgreSQL schema of its own per test run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from server.storage.migrate import upgrade

POSTGRES_URL = os.environ.get("WORKSPACE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
HOW_TO_START = (
    "Start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` (trust auth, database `test`), "
    "or point WORKSPACE_TEST_POSTGRES_URL at another server. PostgreSQL tests never skip."
)


def _admin_connection() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} cannot be reached: {e}\n{HOW_TO_START}", pytrace=False)


def with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A migrated, empty database URL of ``kind`` ("sqlite" or "postgres"), removed afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    schema = f"ws_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = with_search_path(POSTGRES_URL, schema)
        upgrade(url)
        yield url
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def empty_postgres_schema() -> Iterator[str]:
    """A PostgreSQL schema with no tables at all (not migrated), removed afterwards."""
    schema = f"ws_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def own_postgres_database(prefix: str = "ws_test") -> Iterator[str]:
    """A PostgreSQL database of its own (``CREATE DATABASE``, not migrated), dropped afterwards: for what a
    schema on the search path cannot do, such as a connection pooler that forwards no ``options``."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
