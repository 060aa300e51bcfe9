"""security: session generation, login attempts, Twilio tombstones, ops actions

``users.session_generation`` ends older sessions server-side; ``login_attempts`` is the
throttling state shared by every worker; ``twilio_tombstones`` remembers MessageSids the
retention cleanup deleted; ``ops_actions`` records who ran a dashboard replay.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 06:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), server_default="1", nullable=False))

    op.create_table(
        "login_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_email_created_at", ["email", "created_at"], unique=False)
        batch_op.create_index("ix_login_attempts_client_ip_created_at", ["client_ip", "created_at"],
                              unique=False)

    op.create_table(
        "twilio_tombstones",
        sa.Column("sid_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("sid_hash", name=op.f("pk_twilio_tombstones")),
    )

    op.create_table(
        "ops_actions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("order_id", BIG_ID, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_ops_actions_order_id_orders"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_ops_actions_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_actions")),
    )
    with op.batch_alter_table("ops_actions", schema=None) as batch_op:
        batch_op.create_index("ix_ops_actions_created_at", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ops_actions_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ops_actions_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("ops_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ops_actions_user_id"))
        batch_op.drop_index(batch_op.f("ix_ops_actions_order_id"))
        batch_op.drop_index("ix_ops_actions_created_at")
    op.drop_table("ops_actions")
    op.drop_table("twilio_tombstones")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_client_ip_created_at")
        batch_op.drop_index("ix_login_attempts_email_created_at")
    op.drop_table("login_attempts")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
