"""webhook messages: drop the unused index on context_message_id

Nothing looks a message up by the message it replies to (the conversation finds an order's
confirmation through ``outbound_messages``), and every webhook insert paid for the entry, a NULL
one at that (the worker sets the column later).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 09:40:00

"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_context_message_id")


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_messages_context_message_id", ["context_message_id"], unique=False)
