"""Apply Alembic migrations: ``python -m server migrate`` and the test fixtures both call ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from ..settings import database_url, sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url``; migrations run on the synchronous driver of the same database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = database_url(url, asynchronous=False)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    path = sqlite_path(database_url(url, asynchronous=False))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def current_tables(url: str) -> list[str]:
    engine = create_engine(database_url(url, asynchronous=False))
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()
