"""shops; orders and replies point at them; reply kinds; message links; needs_attention

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06 06:40:00

"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_STATUSES = ("queued", "processing", "completed", "failed", "dead", "rate_limited", "stale", "ignored")
NEW_STATUSES = OLD_STATUSES + ("needs_attention",)


def _in(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade():
    op.create_table(
        "shops",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("profile_name", sa.String(length=255), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shops")),
        sa.UniqueConstraint("phone_number", name=op.f("uq_shops_phone_number")),
        sa.UniqueConstraint("user_id", name=op.f("uq_shops_user_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shop_id", BIG_ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_orders_shop_id"), ["shop_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_orders_shop_id_shops"), "shops", ["shop_id"], ["id"],
                                    ondelete="SET NULL")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shop_id", BIG_ID, nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbound_messages_shop_id"), ["shop_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_outbound_messages_shop_id_shops"), "shops", ["shop_id"],
                                    ["id"], ondelete="SET NULL")
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context_message_id", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_webhook_messages_context_message_id"), ["context_message_id"],
                              unique=False)
        batch_op.drop_constraint(op.f("ck_webhook_messages_status"), type_="check")
        batch_op.create_check_constraint("status", _in(NEW_STATUSES))


def downgrade():
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_messages_status"), type_="check")
        batch_op.create_check_constraint("status", _in(OLD_STATUSES))
        batch_op.drop_index(batch_op.f("ix_webhook_messages_context_message_id"))
        batch_op.drop_column("context_message_id")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbound_messages_shop_id_shops"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbound_messages_shop_id"))
        batch_op.drop_column("kind")
        batch_op.drop_column("shop_id")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_orders_shop_id_shops"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_orders_shop_id"))
        batch_op.drop_column("shop_id")
    op.drop_table("shops")
