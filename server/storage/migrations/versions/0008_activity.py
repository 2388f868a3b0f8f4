"""activity: the activity log (who did what, on what, and when), one row per ACTIVITY event

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "activity",
        # The id of the event appended in the same transaction: never generated here.
        sa.Column("id", BigId, autoincrement=False, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("actor_id", BigId, nullable=True),
        sa.Column("actor_username", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_activity_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity")),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_activity_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activity_action"), ["action"], unique=False)
        batch_op.create_index("ix_activity_resource_type_resource_id", ["resource_type", "resource_id"], unique=False)


def downgrade() -> None:
    op.drop_table("activity")
