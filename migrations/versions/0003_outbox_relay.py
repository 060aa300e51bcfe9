"""the outbox relay: webhook_messages.relayed_at and the index its claim reads

Intake only stores a message ``queued``; the relay in the worker service claims the rows not yet
relayed, stamps ``relayed_at`` and queues them. Rows already ``queued`` when this runs are relayed
once the new worker starts (a task the old intake queued for one is harmless: the worker's claim
processes a message once).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 06:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNRELAYED = "status = 'queued' AND relayed_at IS NULL"


def upgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_webhook_messages_unrelayed", ["id"], unique=False,
                              postgresql_where=sa.text(UNRELAYED), sqlite_where=sa.text(UNRELAYED))


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_unrelayed")
        batch_op.drop_column("relayed_at")
