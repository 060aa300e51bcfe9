"""conversation: pending orders with versions, lines that ask, replies that are not 1:1 with messages

Orders made before confirmations existed (``received``) count as ``confirmed``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 07:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ORDER_STATUSES = ("pending", "confirmed", "cancelled", "expired", "dispatched", "delivered")
UNFINISHED = "status IN ('queued', 'processing', 'failed')"


def upgrade():
    op.execute("UPDATE orders SET status = 'confirmed' WHERE status NOT IN ("
               + ", ".join(f"'{s}'" for s in ORDER_STATUSES) + ")")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("language", sa.String(length=8), server_default="en", nullable=False))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE orders SET updated_at = created_at")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index("ix_orders_status_updated_at", ["status", "updated_at"], unique=False)
        batch_op.create_check_constraint("status", "status IN ("
                                         + ", ".join(f"'{s}'" for s in ORDER_STATUSES) + ")")
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_message_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("candidates", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_order_items_webhook_message_id"), ["webhook_message_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_order_items_webhook_message_id_webhook_messages"),
                                    "webhook_messages", ["webhook_message_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.alter_column("webhook_message_id", existing_type=BIG_ID, nullable=True)
        batch_op.add_column(sa.Column("dedup_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("order_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_outbound_messages_dedup_key"), ["dedup_key"])
        batch_op.create_index(batch_op.f("ix_outbound_messages_order_id"), ["order_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_outbound_messages_order_id_orders"), "orders", ["order_id"],
                                    ["id"], ondelete="SET NULL")
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_messages_sender_unfinished", ["sender_id", "id"], unique=False,
                              postgresql_where=sa.text(UNFINISHED), sqlite_where=sa.text(UNFINISHED))


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_sender_unfinished", postgresql_where=sa.text(UNFINISHED),
                            sqlite_where=sa.text(UNFINISHED))
    op.execute("DELETE FROM outbound_messages WHERE webhook_message_id IS NULL")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbound_messages_order_id_orders"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbound_messages_order_id"))
        batch_op.drop_constraint(batch_op.f("uq_outbound_messages_dedup_key"), type_="unique")
        batch_op.drop_column("payload")
        batch_op.drop_column("order_id")
        batch_op.drop_column("dedup_key")
        batch_op.alter_column("webhook_message_id", existing_type=BIG_ID, nullable=False)
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_order_items_webhook_message_id_webhook_messages"),
                                 type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_order_items_webhook_message_id"))
        batch_op.drop_column("candidates")
        batch_op.drop_column("webhook_message_id")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_orders_status"), type_="check")
        batch_op.drop_index("ix_orders_status_updated_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("language")
        batch_op.drop_column("version")
    op.execute("UPDATE orders SET status = 'received'")
