"""drop the unread (phone_number, created_at) index on webhook_messages

Nothing reads it (the dashboard's phone filter is a suffix match, which a btree cannot serve),
and every stored message paid for its upkeep on the webhook hot path.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:45:00

"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_phone_number_created_at")


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_messages_phone_number_created_at", ["phone_number", "created_at"],
                              unique=False)
