"""Alembic environment: one history for SQLite and PostgreSQL, run on the synchronous drivers."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from server.storage.database import configure_sqlite
from server.storage.models import Base

config = context.config
url = config.attributes["url"]


def run() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    if url.startswith("sqlite"):
        configure_sqlite(engine)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),  # SQLite alters tables by copying them
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
