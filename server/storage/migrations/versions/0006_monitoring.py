"""monitoring: each server process's last published figures, and the issues client apps report

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "replica_figures",
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("replica_id", sa.String(length=100), nullable=False),
        sa.Column("reported_at", Time, nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_replica_figures")),
    )
    with op.batch_alter_table("replica_figures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replica_figures_reported_at"), ["reported_at"], unique=False)
    op.create_table(
        "client_issues",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("client_version", sa.String(length=100), nullable=False),
        sa.Column("platform", sa.String(length=100), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("reporter_id", BigId, nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("resolved_at", Time, nullable=True),
        sa.Column("resolver_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["users.id"], name=op.f("fk_client_issues_reporter_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["resolver_id"], ["users.id"], name=op.f("fk_client_issues_resolver_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_issues")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("client_issues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_issues_resolved_at"), ["resolved_at"], unique=False)


def downgrade() -> None:
    op.drop_table("client_issues")
    op.drop_table("replica_figures")
