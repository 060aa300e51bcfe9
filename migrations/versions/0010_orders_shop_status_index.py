"""orders: a shop's orders in a status, newest first, from one index on (shop_id, status, id)

The worker looks up the shop's newest pending order for every text it reads. With only
``shop_id`` and ``(status, created_at, id)`` to choose from, PostgreSQL's plan for the prepared
statement (made while the table was young) combined both, reading every pending order's entry on
each message: ever more work as orders grew. One index answers the lookup exactly, whatever the
statistics say. It begins with ``shop_id``, so it replaces the index on ``shop_id`` alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 18:20:00

"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_shop_id_status_id", ["shop_id", "status", "id"], unique=False)
        batch_op.drop_index("ix_orders_shop_id")


def downgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_shop_id", ["shop_id"], unique=False)
        batch_op.drop_index("ix_orders_shop_id_status_id")
