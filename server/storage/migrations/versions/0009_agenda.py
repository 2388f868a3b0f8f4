"""agenda: events (timed or all-day, repeating or not) and whom each is shared with

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agenda_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("owner_id", BigId, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("start_at", Time, nullable=True),
        sa.Column("end_at", Time, nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("recurrence", sa.Text(), nullable=True),
        sa.Column("shared_with_everyone", sa.Boolean(), nullable=False),
        sa.Column("span_start", Time, nullable=False),
        sa.Column("span_end", Time, nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_agenda_events_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_events")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("agenda_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_events_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_agenda_events_shared_with_everyone"), ["shared_with_everyone"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_agenda_events_span_start"), ["span_start"], unique=False)
        batch_op.create_index(batch_op.f("ix_agenda_events_span_end"), ["span_end"], unique=False)
    op.create_table(
        "agenda_event_shares",
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["agenda_events.id"],
            name=op.f("fk_agenda_event_shares_event_id_agenda_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agenda_event_shares_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", name=op.f("pk_agenda_event_shares")),
    )
    with op.batch_alter_table("agenda_event_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agenda_event_shares_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("agenda_event_shares")
    op.drop_table("agenda_events")
