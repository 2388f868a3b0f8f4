"""lots: goods-receiving lots, their items (serials unique across lots) and every item's inventory records

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lots",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("reference_key", sa.String(length=64), nullable=False),
        sa.Column("supplier", sa.String(length=200), nullable=False),
        sa.Column("received_date", sa.Date(), nullable=False),
        sa.Column("recovered_date", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("creator_id", BigId, nullable=True),
        sa.Column("creator_username", sa.String(length=32), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("finished_at", Time, nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("processed_count", sa.Integer(), nullable=False),
        sa.Column("refurbished_count", sa.Integer(), nullable=False),
        sa.Column("for_parts_count", sa.Integer(), nullable=False),
        sa.Column("scrapped_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_lots_creator_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
        sa.UniqueConstraint("reference_key", name=op.f("uq_lots_reference_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.create_index("ix_lots_received_date_id", ["received_date", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lots_status"), ["status"], unique=False)
    op.create_table(
        "lot_items",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("lot_id", BigId, nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=False),
        sa.Column("serial_key", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("brand_key", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("model_key", sa.String(length=100), nullable=False),
        sa.Column("entry_method", sa.String(length=8), nullable=False),
        sa.Column("added_at", Time, nullable=False),
        sa.Column("adder_id", BigId, nullable=True),
        sa.Column("adder_username", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=True),
        sa.Column("technician", sa.String(length=100), nullable=True),
        sa.Column("operating_system", sa.String(length=100), nullable=True),
        sa.Column("inventoried_at", Time, nullable=True),
        sa.Column("recorder_username", sa.String(length=32), nullable=True),
        sa.Column("record_count", sa.Integer(), nullable=False),
        # No ON DELETE action: only an empty lot may be deleted.
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_items_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["adder_id"], ["users.id"], name=op.f("fk_lot_items_adder_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_items")),
        # Serial numbers are unique across all lots, without regard to case: this index is the truth, races included.
        sa.UniqueConstraint("serial_key", name=op.f("uq_lot_items_serial_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("lot_items", schema=None) as batch_op:
        batch_op.create_index("ix_lot_items_lot_id_id", ["lot_id", "id"], unique=False)
        batch_op.create_index("ix_lot_items_brand_key_model_key", ["brand_key", "model_key"], unique=False)
    op.create_table(
        "lot_inventory_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("item_id", BigId, nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("technician", sa.String(length=100), nullable=False),
        sa.Column("operating_system", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", Time, nullable=False),
        sa.Column("recorder_id", BigId, nullable=True),
        sa.Column("recorder_username", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["lot_items.id"],
            name=op.f("fk_lot_inventory_records_item_id_lot_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recorder_id"], ["users.id"], name=op.f("fk_lot_inventory_records_recorder_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_inventory_records")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("lot_inventory_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_inventory_records_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    op.drop_table("lot_inventory_records")
    op.drop_table("lot_items")
    op.drop_table("lots")
