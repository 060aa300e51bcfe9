"""order desk: indexes for the orders list, the conversation of an order and the unmatched lines

The desk pages newest first with a keyset on ``(created_at, id)``, alone or after a status or a
shop; an order's conversation is its sender's messages in time order; the attention page lists
the order lines no product matched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 07:05:00

"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_created_at")
        batch_op.create_index("ix_orders_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_orders_status_created_at_id", ["status", "created_at", "id"], unique=False)
        batch_op.create_index("ix_orders_shop_id_created_at_id", ["shop_id", "created_at", "id"], unique=False)
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.create_index("ix_order_items_unmatched", ["order_id"], unique=False,
                              postgresql_where=sa.text("product_id IS NULL"),
                              sqlite_where=sa.text("product_id IS NULL"))
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_messages_sender_id_created_at", ["sender_id", "created_at"],
                              unique=False)


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_sender_id_created_at")
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_index("ix_order_items_unmatched", postgresql_where=sa.text("product_id IS NULL"),
                            sqlite_where=sa.text("product_id IS NULL"))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_shop_id_created_at_id")
        batch_op.drop_index("ix_orders_status_created_at_id")
        batch_op.drop_index("ix_orders_created_at_id")
        batch_op.create_index("ix_orders_created_at", ["created_at"], unique=False)
