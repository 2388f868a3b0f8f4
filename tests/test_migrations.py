"""The migration history and the models agree, on both databases, and the history runs both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from server.settings import database_url
from server.storage.migrate import alembic_config
from server.storage.models import Base

from .databases import fresh_database


def differences(url: str) -> list[object]:
    engine = create_engine(database_url(url, asynchronous=False))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_migrated_schema_is_exactly_the_models(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        assert differences(url) == [], "a model changed without a migration (or the reverse)"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_migration_downgrades_and_upgrades_again(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        config = alembic_config(url)
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        assert differences(url) == []


def test_sqlite_never_reuses_the_ids_clients_keep(tmp_path: Path) -> None:
    """Without AUTOINCREMENT, SQLite hands a deleted row's id to the next insert."""
    with fresh_database("sqlite", tmp_path) as url:
        engine = create_engine(database_url(url, asynchronous=False))
        try:
            with engine.connect() as connection:
                tables = dict(
                    connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
                )
        finally:
            engine.dispose()
    for table in ("users", "refresh_tokens", "conversations", "messages"):
        assert "AUTOINCREMENT" in tables[table], table
