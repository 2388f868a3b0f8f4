"""message changes: edits, tombstones, reactions, and the folded text that search matches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Adding columns needs no table copy on SQLite (a copy would also drop the table's AUTOINCREMENT).
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edited_at", Time, nullable=True))
        batch_op.add_column(sa.Column("deleted_at", Time, nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    # Existing messages become searchable: casefold in Python, as the server does, not with SQL lower().
    messages = sa.table("messages", sa.column("id", sa.BigInteger()), sa.column("text", sa.Text()))
    connection = op.get_bind()
    for message_id, text in connection.execute(sa.select(messages.c.id, messages.c.text)).all():
        connection.execute(
            sa.text("UPDATE messages SET search_text = :folded WHERE id = :id"),
            {"folded": text.casefold(), "id": message_id},
        )
    op.create_table(
        "message_reactions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("emoji", sa.String(length=32), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_reactions_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_message_reactions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_reactions")),
        sa.UniqueConstraint("message_id", "user_id", "emoji", name="uq_message_reactions_message_id_user_id_emoji"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("message_reactions")
    with op.batch_alter_table("messages", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("search_text")
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("edited_at")
