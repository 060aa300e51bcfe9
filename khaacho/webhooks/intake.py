"""The record step both providers share: replay window, dedup, audit, commit, rate limit, enqueue.

One request is one database transaction, committed before anything is queued, so a ``200``
always means stored and a failure leaves nothing partial. On PostgreSQL a request with at most
one message is a single statement in autocommit (the audit row and status updates ride as CTEs
on the message upsert): one round trip.

The per-sender limit and the enqueue come after the commit, for the new messages only (a
provider's retry of a stored message does not use up its sender's allowance): they are handed to
:mod:`khaacho.webhooks.admission`, which admits them in batches off the request.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime

import psycopg
from flask import current_app, g
from sqlalchemy import Executable, Insert, bindparam, case, func, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage, dialect_insert, utcnow
from khaacho.webhooks import admission, audit, ratelimit
from khaacho.webhooks.meta import Events, InboundMessage, StatusUpdate

log = logging.getLogger(__name__)
FUTURE_TOLERANCE_SECONDS = 300
# Delivery statuses in the order they can happen; a callback never moves a message backwards,
# so a late "delivered" after "read" changes nothing and repeats are no-ops.
DELIVERY_RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "read": 5,
}
UNAVAILABLE = "storage unavailable, retry later"  # the 503's error, with Retry-After
_messages = WebhookMessage.__table__
_outbound = OutboundMessage.__table__
# What a new message row binds; its counters start at zero and its three times are the request's
# ``now`` (see :func:`_new_row`), so one message and its audit row bind 16 values, not 25.
_BOUND_COLUMNS = (
    "message_id", "webhook_source", "phone_number", "sender_id", "message_type", "message_text",
    "payload", "status", "response_time_ms", "message_timestamp", "request_id",
)
# The intake statement is run by psycopg itself, compiled once with numbered placeholders ($1):
# psycopg then neither parses the SQL for ``%(name)s`` nor maps a dict on every request.
_NUMBERED = postgresql.psycopg.dialect(paramstyle="numeric_dollar")


class _HeldConnection(threading.local):
    """This thread's intake connection (see :func:`_intake_connection`)."""

    engine = None
    pid = 0
    connection: psycopg.Connection | None = None
    cursor: psycopg.RawCursor | None = None  # on ``connection``, set and cleared with it
    recycle_at = 0.0


_held = _HeldConnection()


class StorageUnavailable(RuntimeError):
    """The database did not take the request; nothing of it was kept."""


def record(source: str, events: Events, client_ip: str | None, endpoint: str,
           started: float, reason: str | None = None) -> None:
    """Store a verified request's messages and statuses in one transaction; hand the new ones to admission.

    Raises :class:`StorageUnavailable` when the database fails; the caller answers ``503``.
    """
    config = current_app.config
    now = utcnow()
    messages = _distinct(events.messages)
    statuses = _classify(messages, now.timestamp(), config["WEBHOOK_MAX_AGE_MINUTES"] * 60)
    audit_reason = reason
    if reason is None and ratelimit.paused() and "queued" in statuses.values():
        audit_reason = admission.LIMITER_DOWN_REASON
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    request_id = g.get("request_id")
    rows = [_row(source, m, statuses[m.message_id], now, elapsed_ms, request_id) for m in messages]

    audit_params = {**audit.valid_params(source, endpoint, client_ip, audit_reason, elapsed_ms), "now": now}
    dialect = db.engine.dialect.name
    status_update = _status_update(events.statuses)
    side = [] if status_update is None else [status_update]
    try:
        audit_id, result = _store(dialect, audit_params, rows, side)
    except (SQLAlchemyError, psycopg.Error) as exc:
        log.warning("webhook not stored, answering 503: %s: %s", type(exc).__name__, exc)
        raise StorageUnavailable(str(exc)) from exc

    # The request's audit row records a limiter outage the admitter may find, unless it already says why.
    outage_audit_id = audit_id if audit_reason is None else None
    new = [admission.NewMessage(row_id, sender, outage_audit_id)
           for row_id, duplicate_count, status, sender in sorted(result)
           if not duplicate_count and status == "queued"]
    if new:
        admission.submit(new)


@functools.cache
def _statements(dialect: str) -> tuple[Insert, Insert, Insert]:
    """The audit insert, the message upsert and both in one statement, built and compiled once.

    The upsert returns each row's id, duplicate count, status and sender; the combined one
    also the audit row's id.
    """
    audit_insert = audit.valid_insert().returning(audit.table.c.id)
    bound = {c: bindparam(c) for c in _BOUND_COLUMNS}
    values = dialect_insert(dialect, _messages).values({**bound, **_new_row()})
    upsert = values.on_conflict_do_update(
        index_elements=["webhook_source", "message_id"],
        set_={"duplicate_count": _messages.c.duplicate_count + literal_column("1"),
              "last_duplicate_at": values.excluded.first_received_at},
    )
    returned = (_messages.c.id, _messages.c.duplicate_count, _messages.c.status, _messages.c.sender_id)
    audit_cte = audit_insert.cte("audit")
    with_audit = upsert.returning(*returned, select(audit_cte.c.id).scalar_subquery()).add_cte(audit_cte)
    return audit_insert, upsert.returning(*returned), with_audit


def _new_row() -> dict:
    now = bindparam("now")
    zero = literal_column("0")
    return {"duplicate_count": zero, "attempts": zero, "error_count": zero,
            "first_received_at": now, "updated_at": now, "created_at": now}


def _store(dialect: str, audit_params: dict, rows: list[dict],
           side: list[Executable]) -> tuple[int, list[tuple]]:
    """Write the audit row, messages and ``side`` statements atomically; the audit id, the upsert's rows."""
    audit_insert, upsert, upsert_with_audit = _statements(dialect)
    if dialect == "postgresql" and len(rows) <= 1:
        # The usual request: one statement (the rest as data-modifying CTEs) is one transaction
        # by itself, so it runs in autocommit: one round trip instead of BEGIN, INSERT, COMMIT.
        if rows:
            stmt, params = upsert_with_audit, {**rows[0], **audit_params}
        else:
            stmt, params = audit_insert, audit_params
        if side:
            stmt = stmt.add_cte(*(s.cte(f"side_{i}") for i, s in enumerate(side)))
        found = _autocommit(stmt, params)
        if not rows:
            return found[0][0], []
        return found[0][-1], [row[:-1] for row in found]
    with db.engine.begin() as conn:
        audit_id = conn.execute(audit_insert, audit_params).scalar_one()
        for stmt in side:
            conn.execute(stmt)
        return audit_id, (conn.execute(upsert, rows).all() if rows else [])


@functools.lru_cache(maxsize=32)
def _compiled(stmt: Executable) -> tuple[str, tuple[str, ...], dict]:
    """The statement's SQL with numbered placeholders, its parameters in order, and the values it
    binds itself (CASE values of a status update)."""
    compiled = stmt.compile(dialect=_NUMBERED)
    return compiled.string, tuple(compiled.positiontup or ()), compiled.params


def _autocommit(stmt: Executable, params: dict) -> list[tuple]:
    """Run one ``RETURNING`` statement in autocommit on this thread's intake connection; its rows.

    The Core statement is compiled once and handed to the driver as is: on the hot path this
    costs a third of the CPU of a SQLAlchemy ``Connection.execute`` (bind values here are plain
    str/int/float/datetime; the JSON payload goes as text for its ``::JSON`` cast).
    """
    sql, names, fixed = _compiled(stmt)
    params = {**fixed, **params}
    if "payload" in params:
        params["payload"] = json.dumps(params["payload"])
    cursor = _intake_cursor()
    try:
        return cursor.execute(sql, [params[name] for name in names]).fetchall()
    except psycopg.OperationalError:
        connection, _held.connection, _held.cursor = _held.connection, None, None
        if connection is not None:  # broken or timed out: the next request opens a new one
            connection.close()
        raise


def _intake_cursor() -> psycopg.RawCursor:
    """A cursor on this thread's autocommit psycopg connection to the app's database.

    The connection is opened by the app's engine and held by the thread (one per sync worker,
    one per thread of a gthread worker) instead of checked out of the pool per request, which
    saves the checkout, the autocommit switches and the reset on return. Opened through the
    engine, it has the pool's connect arguments (statement and lock timeouts); it is replaced
    after the pool's recycle time, after a fork, and when the app's engine changes.
    """
    engine, pid, held = db.engine, os.getpid(), _held.connection
    if held is not None and _held.pid == pid:
        if _held.engine is engine and time.monotonic() < _held.recycle_at and not held.closed:
            return _held.cursor
        held.close()
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    pooled.detach()  # ours now: the pool neither counts nor resets it
    connection.autocommit = True
    recycle = current_app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_recycle", 1800)
    _held.engine, _held.pid, _held.connection = engine, pid, connection
    _held.cursor = psycopg.RawCursor(connection)
    _held.recycle_at = time.monotonic() + recycle
    return _held.cursor


def _distinct(messages: list[InboundMessage]) -> list[InboundMessage]:
    # Within one request a message id counts once; ON CONFLICT cannot touch a row twice.
    seen: dict[str, InboundMessage] = {}
    for message in messages:
        seen.setdefault(message.message_id, message)
    return list(seen.values())


def _classify(messages: list[InboundMessage], now: float, max_age: int) -> dict[str, str]:
    statuses = {}
    for m in messages:
        if m.ignored:
            statuses[m.message_id] = "ignored"
        elif m.timestamp is not None and not (
            now - max_age <= m.timestamp <= now + FUTURE_TOLERANCE_SECONDS
        ):
            statuses[m.message_id] = "stale"
        else:
            statuses[m.message_id] = "queued"
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


def _status_update(updates: list[StatusUpdate]):
    """One UPDATE moving each matching outbound message forward to its newest known status, or None."""
    best: dict[str, StatusUpdate] = {}
    for u in updates:
        rank = DELIVERY_RANK.get(u.status)
        current = best.get(u.provider_message_id)
        if rank is not None and (current is None or rank > DELIVERY_RANK[current.status]):
            best[u.provider_message_id] = u
    if not best:
        return None
    pid = _outbound.c.provider_message_id
    current_rank = func.coalesce(case(DELIVERY_RANK, value=_outbound.c.delivery_status), 0)
    new_status = case({k: u.status for k, u in best.items()}, value=pid)
    new_rank = case({k: DELIVERY_RANK[u.status] for k, u in best.items()}, value=pid)
    return (
        update(_outbound)
        .where(or_(*(pid == k for k in best)), current_rank < new_rank)
        .values(delivery_status=new_status, updated_at=utcnow(),
                delivery_error=case({k: u.error for k, u in best.items()}, value=pid,
                                    else_=_outbound.c.delivery_error))
    )


def insert_audit_only(source: str, endpoint: str, client_ip: str | None, reason: str) -> None:
    """Audit a verified request that carried nothing to store (e.g. malformed JSON)."""
    try:
        with db.engine.begin() as conn:
            audit.insert_valid(conn, source, endpoint, client_ip, reason)
    except SQLAlchemyError as exc:
        log.warning("could not audit a webhook: %s", type(exc).__name__)
