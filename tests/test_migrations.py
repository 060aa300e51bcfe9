"""One migration history builds the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from khaacho.extensions import db


def _drift(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, db.metadata)
    finally:
        engine.dispose()


def test_sqlite_migrations_match_models(sqlite_url):
    assert _drift(sqlite_url) == []


@pytest.mark.integration
def test_postgresql_migrations_match_models(pg_url):
    assert _drift(pg_url.replace("postgresql://", "postgresql+psycopg://", 1)) == []
