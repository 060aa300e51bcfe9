"""Intake storage: a verified request's messages, delivery statuses and audit row, kept at once.

A request is one atomic write, so ``200`` always means stored and a failure leaves nothing
partial. On PostgreSQL it is one statement in autocommit, whatever the number of messages: the multi-row
upsert and the delivery-status update ride as data-modifying CTEs on the audit row's insert, and
when the request stored a new ``queued`` message the statement also calls ``pg_notify`` on
:data:`~khaacho.models.INTAKE_CHANNEL`, which PostgreSQL delivers at commit to wake the relay
(:mod:`khaacho.processing.relay`). The committed ``queued`` row is the outbox: nothing is queued
or rate limited here. On SQLite the same writes run in one transaction.

The statement runs on an autocommit engine of intake's own (see :func:`bind_engine`), with the
driver's cursor on SQL compiled once per batch size (see :func:`_execute`). A connection the
server dropped (a restart, ``pg_terminate_backend``) fails its statement; it is then invalidated
with the pool's older connections, and the statement, idempotent by its upsert, is run once more
on a fresh connection, so a database that is back is never answered ``503``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import weakref
from datetime import UTC, datetime

import psycopg
from flask import Flask
from sqlalchemy import Insert, bindparam, create_engine, func, literal, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from khaacho import delivery, statements
from khaacho.events import Events, InboundMessage
from khaacho.extensions import db
from khaacho.models import INTAKE_CHANNEL, WebhookMessage, dialect_insert, utcnow
from khaacho.webhooks import audit

log = logging.getLogger(__name__)
FUTURE_TOLERANCE_SECONDS = 300
UNAVAILABLE = "storage unavailable, retry later"  # the 503's error, with Retry-After
QUEUED = "queued"
_ENGINE_KEY = "khaacho_intake_engine"
INTAKE_MAX_OVERFLOW = 8  # a gthread worker's threads beyond the one pooled connection
_messages = WebhookMessage.__table__
# What a new message row binds; its counters start at zero and its three times are the request's
# ``now`` (see :func:`_new_row`).
_BOUND_COLUMNS = (
    "message_id", "webhook_source", "phone_number", "sender_id", "message_type", "message_text",
    "payload", "status", "response_time_ms", "message_timestamp", "request_id",
)


class StorageUnavailable(RuntimeError):
    """The database did not take the request; nothing of it was kept."""


def store(app: Flask, source: str, events: Events, *, client_ip: str | None, endpoint: str,
          started: float, request_id: str | None, reason: str | None = None) -> None:
    """Store a verified request's messages and statuses with its audit row, atomically.

    Needs no app context on PostgreSQL. Raises :class:`StorageUnavailable` when the database
    fails; the caller answers ``503``.
    """
    now = utcnow()
    messages = _distinct(events.messages)
    statuses = _classify(messages, now.timestamp(), app.config["WEBHOOK_MAX_AGE_MINUTES"] * 60)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    rows = [_row(source, m, statuses[m.message_id], now, elapsed_ms, request_id) for m in messages]
    audit_params = {**audit.valid_params(source, endpoint, client_ip, reason, elapsed_ms), "now": now}
    moves = delivery.status_update(events.statuses)
    try:
        engine = app.extensions.get(_ENGINE_KEY)
        if engine is not None:
            _store_postgresql(engine, audit_params, rows, moves)
        else:
            with app.app_context(), db.engine.begin() as conn:
                _store_in_transaction(conn, audit_params, rows, moves)
    except (SQLAlchemyError, psycopg.Error) as exc:
        log.warning("webhook not stored, answering 503: %s: %s", type(exc).__name__, exc)
        raise StorageUnavailable(str(exc)) from exc


def bind_engine(app: Flask) -> None:
    """Give intake its own autocommit engine on PostgreSQL (SQLite uses the app's engine as is).

    Called once from the app factory, in an app context. The engine has the app's URL, connect
    arguments and recycling, but its connections are autocommit from the start and nothing is
    reset when one goes back to the pool: a checkout costs no isolation switch and no rollback,
    a tenth of the request's CPU (``bench/RESULTS.md``). After a fork the child drops the parent's
    connections without closing them (the parent still uses them).
    """
    if db.engine.dialect.name != "postgresql":
        return
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    engine = create_engine(
        db.engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
        pool_size=1, max_overflow=INTAKE_MAX_OVERFLOW, pool_timeout=options.get("pool_timeout", 30),
        pool_recycle=options.get("pool_recycle", -1), connect_args=options.get("connect_args", {}),
    )
    app.extensions[_ENGINE_KEY] = engine
    ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: (e := ref()) is not None and e.dispose(close=False))


def close_engine(app: Flask) -> None:
    """Close intake's connections (an app's counterpart of ``db.engine.dispose()``)."""
    engine = app.extensions.pop(_ENGINE_KEY, None)
    if engine is not None:
        engine.dispose()


def _store_postgresql(engine: Engine, audit_params: dict, rows: list[dict],
                      moves: delivery.StatusMoves | None) -> None:
    compiled = statements.compile_positional(_statement(len(rows), moves.count if moves else 0))
    params = {**compiled.fixed, **audit_params, **(moves.params if moves else {})}
    for i, row in enumerate(rows):
        params.update({f"{name}_{i}": value for name, value in row.items()})
        params[f"payload_{i}"] = json.dumps(row["payload"])  # as text, for the ::JSON cast
    _execute(engine, compiled.sql, tuple(params[name] for name in compiled.names))


def _execute(engine: Engine, sql: str, values: tuple) -> None:
    """Run ``sql`` with the driver's own cursor on a pooled connection; once more on a fresh
    connection when the server had dropped the first.

    The statement needs no result, no execution events and no ``Connection``; going without them
    saves about a sixth of the request's CPU (``bench/RESULTS.md``). The pool still owns the
    connection: checkout, return, recycling and fork safety are SQLAlchemy's. A connection the
    dialect's own test finds dropped is invalidated and the pool replaced, so the connections
    made before the drop are not tried either (what SQLAlchemy does for a ``Connection``).
    """
    for attempt in (1, 2):
        conn = engine.raw_connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, values)
            return
        except psycopg.Error as exc:
            if attempt == 2 or not engine.dialect.is_disconnect(exc, conn.dbapi_connection, None):
                raise
            conn.invalidate(exc)
            engine.dispose(close=False)
            log.info("intake connection was dropped by the server; retrying on a new one")
        finally:
            conn.close()


@functools.lru_cache(maxsize=64)
def _statement(count: int, statuses: int = 0) -> Insert:
    """The whole request as one statement for ``count`` messages and ``statuses`` replies whose
    delivery status moves: upsert CTE, status CTE, audit row, notify.

    The audit row's ``INSERT … SELECT`` is the main statement, so the statement returns no rows
    (a result set to describe and read costs the driver and SQLAlchemy a fifth of the request's
    CPU, ``bench/RESULTS.md``). The notify rides in its ``WHERE``, a condition that always holds
    (a count is never negative) but makes PostgreSQL call ``pg_notify`` once when the upsert
    stored a new ``queued`` message; data-modifying CTEs run whether or not they are referenced.
    """
    if statuses:
        return _statement(count).add_cte(delivery.status_statement(statuses).cte("delivery"))
    if not count:
        return audit.valid_insert()
    values = [{**{c: bindparam(f"{c}_{i}", type_=_messages.c[c].type) for c in _BOUND_COLUMNS}, **_new_row()}
              for i in range(count)]
    insert = postgresql.insert(_messages).values(values)
    stored = _on_conflict(insert).returning(_messages.c.duplicate_count, _messages.c.status).cte("stored")
    new_queued = (stored.c.duplicate_count == literal_column("0")) & (stored.c.status == literal(QUEUED))
    notify = select(func.pg_notify(literal(INTAKE_CHANNEL), literal(""))).where(new_queued).limit(1)
    notified = select(func.count()).select_from(notify.subquery()).scalar_subquery()
    return audit.valid_insert(where=notified >= literal_column("0")).add_cte(stored)


def _on_conflict(insert):
    """A redelivery counts on the stored row; the row keeps its status."""
    return insert.on_conflict_do_update(
        index_elements=["webhook_source", "message_id"],
        set_={"duplicate_count": _messages.c.duplicate_count + literal_column("1"),
              "last_duplicate_at": insert.excluded.first_received_at},
    )


def _store_in_transaction(conn, audit_params: dict, rows: list[dict],
                          moves: delivery.StatusMoves | None) -> None:
    conn.execute(audit.valid_insert(), audit_params)
    if moves is not None:
        conn.execute(delivery.status_statement(moves.count), {**moves.params, "now": audit_params["now"]})
    if rows:
        conn.execute(_sqlite_upsert(), rows)


@functools.cache
def _sqlite_upsert():
    values = dialect_insert("sqlite", _messages).values({**{c: bindparam(c) for c in _BOUND_COLUMNS},
                                                         **_new_row()})
    return _on_conflict(values)


def _new_row() -> dict:
    now = bindparam("now")
    zero = literal_column("0")
    return {"duplicate_count": zero, "attempts": zero, "error_count": zero,
            "first_received_at": now, "updated_at": now, "created_at": now}


def _distinct(messages: list[InboundMessage]) -> list[InboundMessage]:
    # Within one request a message id counts once; ON CONFLICT cannot touch a row twice.
    seen: dict[str, InboundMessage] = {}
    for message in messages:
        seen.setdefault(message.message_id, message)
    return list(seen.values())


def _classify(messages: list[InboundMessage], now: float, max_age: int) -> dict[str, str]:
    statuses = {}
    for m in messages:
        if m.timestamp is not None and not (
            now - max_age <= m.timestamp <= now + FUTURE_TOLERANCE_SECONDS
        ):
            statuses[m.message_id] = "stale"
        else:
            statuses[m.message_id] = QUEUED
    return statuses


def _row(source: str, m: InboundMessage, status: str, now: datetime, elapsed_ms: float,
         request_id: str | None) -> dict:
    plausible = m.timestamp is not None and 0 < m.timestamp < 253402300799
    return {
        "message_id": m.message_id, "webhook_source": source, "phone_number": m.phone_number,
        "sender_id": m.sender_id, "message_type": m.message_type, "message_text": m.text,
        "payload": m.payload, "status": status, "response_time_ms": round(elapsed_ms, 3),
        "message_timestamp": datetime.fromtimestamp(m.timestamp, UTC) if plausible else None,
        "request_id": request_id, "now": now,
    }
