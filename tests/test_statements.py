"""The worker's statements on the driver's cursor store and fail as the session's own executions do."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, cast, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import Text

from khaacho import statements
from khaacho.extensions import db
from khaacho.models import WebhookMessage

_messages = WebhookMessage.__table__
ADD = insert(_messages).returning(_messages.c.id, _messages.c.created_at, _messages.c.updated_at)
STORED = select(cast(_messages.c.payload, Text).label("payload"), _messages.c.message_type,
                _messages.c.status).where(_messages.c.id == bindparam("_id"))


def _row(message_id: str, payload) -> dict:
    return {"message_id": message_id, "webhook_source": "whatsapp", "sender_id": "+9779800000001",
            "payload": payload}


def test_rows_written_on_the_driver_are_stored_as_the_session_stores_them(any_app):
    """Column defaults filled in (Python-side and SQL-side), JSON as JSON, None as JSON null."""
    with any_app.app_context():
        for payload in (None, {"kind": "text", "lines": [1, 2]}):
            driver = statements.first(ADD, _row(f"wamid.DRIVER{payload is None}", payload))
            session = db.session.execute(ADD, _row(f"wamid.SESSION{payload is None}", payload)).one()
            assert driver.created_at is not None and driver.updated_at is not None
            stored = [db.session.execute(STORED, {"_id": row.id}).one() for row in (driver, session)]
            assert stored[0] == stored[1]
            assert stored[0].message_type == "text" and stored[0].status == "queued"
        db.session.commit()


def test_a_statement_that_returns_no_rows_gives_an_empty_list(any_app):
    with any_app.app_context():
        added = statements.first(ADD, _row("wamid.ONE", None))
        touched = statements.fetch(update(_messages).where(_messages.c.id == bindparam("_id"))
                                   .values(status="completed"), {"_id": added.id})
        assert touched == []
        assert db.session.execute(STORED, {"_id": added.id}).one().status == "completed"
        db.session.rollback()


def test_a_driver_error_is_raised_as_the_sessions_exception(any_app):
    with any_app.app_context():
        statements.first(ADD, _row("wamid.TWICE", None))
        with pytest.raises(IntegrityError):
            statements.first(ADD, _row("wamid.TWICE", None))
        db.session.rollback()
