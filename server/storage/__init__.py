"""SQLAlchemy 2 models, repositories and the unit of work; one code path for SQLite and PostgreSQL."""
