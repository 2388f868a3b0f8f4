"""shortcuts: each person's saved links, in categories they arrange

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shortcut_categories",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_shortcut_categories_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shortcut_categories")),
        sa.UniqueConstraint("user_id", "name_key", name="uq_shortcut_categories_user_id_name_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("shortcut_categories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shortcut_categories_user_id"), ["user_id"], unique=False)
    op.create_table(
        "shortcuts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("category_id", BigId, nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_shortcuts_user_id_users"), ondelete="CASCADE"),
        # No ON DELETE action: a category's shortcuts are moved before it is deleted (see the model).
        sa.ForeignKeyConstraint(
            ["category_id"], ["shortcut_categories.id"], name=op.f("fk_shortcuts_category_id_shortcut_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shortcuts")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("shortcuts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_shortcuts_user_id_category_id_position", ["user_id", "category_id", "position"], unique=False
        )


def downgrade() -> None:
    op.drop_table("shortcuts")
    op.drop_table("shortcut_categories")
