"""presence: what each person last published, and each server process's open streams per person

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "presence",
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("away", sa.Boolean(), nullable=False),
        sa.Column("status_text", sa.String(length=100), nullable=False),
        sa.Column("last_seen_at", Time, nullable=True),
        sa.Column("changed_at", Time, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_presence_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_presence")),
    )
    op.create_table(
        "presence_connections",
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("streams", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_presence_connections_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("instance", "user_id", name=op.f("pk_presence_connections")),
    )
    with op.batch_alter_table("presence_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_presence_connections_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("presence_connections")
    op.drop_table("presence")
