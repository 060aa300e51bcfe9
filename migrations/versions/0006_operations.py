"""operations: pause switches, alerts, worker heartbeats, task timings, request totals, metric snapshots

The audit row of an accepted webhook also records how long the request took until its store
(``response_ms``), so request counts and ack times need no extra write per request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 06:15:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("webhook_signature_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_ms", sa.Float(), nullable=True))

    op.create_table(
        "switches",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_switches")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clear_posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_raised_at", ["raised_at"], unique=False)
        batch_op.create_index("uq_alerts_open_kind", ["kind"], unique=True,
                              postgresql_where=sa.text("cleared_at IS NULL"),
                              sqlite_where=sa.text("cleared_at IS NULL"))
    op.create_table(
        "worker_heartbeats",
        sa.Column("consumer_id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tasks_done", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_table(
        "task_timings",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("consumer_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("max_ms", sa.Float(), nullable=False),
        sa.Column("histogram", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_timings")),
    )
    with op.batch_alter_table("task_timings", schema=None) as batch_op:
        batch_op.create_index("ix_task_timings_bucket_start", ["bucket_start"], unique=False)
    op.create_table(
        "webhook_request_totals",
        sa.Column("webhook_source", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("webhook_source", "outcome", "bucket", name=op.f("pk_webhook_request_totals")),
    )
    op.create_table(
        "metric_snapshots",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "label", name=op.f("pk_metric_snapshots")),
    )


def downgrade():
    op.drop_table("metric_snapshots")
    op.drop_table("webhook_request_totals")
    with op.batch_alter_table("task_timings", schema=None) as batch_op:
        batch_op.drop_index("ix_task_timings_bucket_start")
    op.drop_table("task_timings")
    op.drop_table("worker_heartbeats")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("uq_alerts_open_kind")
        batch_op.drop_index("ix_alerts_raised_at")
    op.drop_table("alerts")
    op.drop_table("switches")
    with op.batch_alter_table("webhook_signature_log", schema=None) as batch_op:
        batch_op.drop_column("response_ms")
