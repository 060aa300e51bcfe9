"""products: an index on updated_at, so the catalog's version is read from the ends of two indexes

The worker reads the catalog's version with every message, to know whether its matcher is
current. It was the count of active products and their newest ``updated_at``: two scans of the
whole table per message, which grew with the catalog (with 5,000 products, about 1 ms of
PostgreSQL's CPU per message). The version is now the highest id and the newest ``updated_at``,
each the end of an index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:55:00

"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index("ix_products_updated_at", ["updated_at"], unique=False)


def downgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_updated_at")
