"""The record step both providers share: replay window, dedup, audit, commit, rate limit, enqueue.

One request is one database transaction, committed before anything is queued, so a ``200``
always means stored and a failure leaves nothing partial. On PostgreSQL a request with at most
one message is a single statement in autocommit (the audit row and status updates ride as CTEs
on the message upsert): one round trip.

The per-sender limit is applied after the commit, to the new messages only (a provider's
retry of a stored message does not use up its sender's allowance): with Redis for both the
limiter and the queue, one script counts the senders and queues the admitted messages (one
more round trip). The rare messages over the limit were committed ``queued`` and are then
marked ``rate_limited`` with their counters in one more transaction. Acknowledging before that
update is safe: the message is stored either way, nothing queued it, and should the update fail
the row stays ``queued`` and the sweep processes it later, the same fail-open as a limiter
outage. A limiter outage leaves the new messages ``queued`` for the sweep too.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from flask import current_app, g
from limits import RateLimitItemPerMinute
from sqlalchemy import Executable, Insert, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db, huey
from khaacho.models import OutboundMessage, WebhookMessage, WebhookRateLimit, utcnow
from khaacho.webhooks import audit, ratelimit
from khaacho.webhooks.meta import Events, InboundMessage, StatusUpdate

log = logging.getLogger(__name__)
FUTURE_TOLERANCE_SECONDS = 300
LIMITER_DOWN_REASON = "rate limiter unavailable, failed open"
# Delivery statuses in the order they can happen; a callback never moves a message backwards,
# so a late "delivered" after "read" changes nothing and repeats are no-ops.
DELIVERY_RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "read": 5,
}
_messages = WebhookMessage.__table__
_outbound = OutboundMessage.__table__
_rate_limits = WebhookRateLimit.__table__
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_MESSAGE_COLUMNS = (
    "message_id", "webhook_source", "phone_number", "sender_id", "message_type", "message_text",
    "payload", "status", "response_time_ms", "duplicate_count", "message_timestamp",
    "first_received_at", "attempts", "error_count", "request_id", "updated_at", "created_at",
)


class StorageUnavailable(RuntimeError):
    """The database did not take the request; nothing of it was kept."""


@dataclass(slots=True)
class Outcome:
    """What one request did: new rows, duplicates, rows queued for processing."""

    stored: int = 0
    duplicates: int = 0
    queued: list[int] = field(default_factory=list)
    rate_limited: list[int] = field(default_factory=list)


def record(source: str, events: Events, client_ip: str | None, endpoint: str,
           started: float, reason: str | None = None) -> Outcome:
    """Store a verified request's messages and statuses in one transaction, then queue the new ones.

    Raises :class:`StorageUnavailable` when the database fails; the caller answers ``503``.
    """
    config = current_app.config
    now = utcnow()
    messages = _distinct(events.messages)
    statuses = _classify(messages, now.timestamp(), config["WEBHOOK_MAX_AGE_MINUTES"] * 60)
    audit_reason = reason
    if reason is None and ratelimit.paused() and "queued" in statuses.values():
        audit_reason = LIMITER_DOWN_REASON
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    request_id = g.get("request_id")
    rows = [_row(source, m, statuses[m.message_id], now, elapsed_ms, request_id) for m in messages]

    audit_row = audit.valid_row(source, endpoint, client_ip, audit_reason, now)
    dialect = db.engine.dialect.name
    status_update = _status_update(events.statuses)
    try:
        audit_id, result = _store(dialect, audit_row, rows, [] if status_update is None else [status_update])
    except (SQLAlchemyError, psycopg.Error) as exc:
        log.warning("webhook not stored, answering 503: %s: %s", type(exc).__name__, exc)
        raise StorageUnavailable(str(exc)) from exc

    outcome = Outcome()
    by_sender: dict[str, list[int]] = {}
    for row_id, duplicate_count, status, sender in sorted(result):
        if duplicate_count:
            outcome.duplicates += 1
        else:
            outcome.stored += 1
            if status == "queued":
                by_sender.setdefault(sender, []).append(row_id)
    if by_sender:
        outcome.queued, outcome.rate_limited, blocked_rows, down = _admit(by_sender, config, now)
        unaudited_outage = down and audit_reason is None
        if blocked_rows or unaudited_outage:
            _after_admission(dialect, outcome.rate_limited, blocked_rows,
                             audit_id if unaudited_outage else None, now)
    return outcome


@functools.cache
def _statements(dialect: str) -> tuple[Insert, Insert, Insert]:
    """The audit insert, the message upsert and both in one statement, built and compiled once.

    The upsert returns each row's id, duplicate count, status and sender; the combined one
    also the audit row's id.
    """
    audit_insert = insert(audit.table).values(
        {c: bindparam(f"audit_{c}") for c in audit.COLUMNS}).returning(audit.table.c.id)
    values = _INSERTS.get(dialect, postgresql.insert)(_messages).values(
        {c: bindparam(c) for c in _MESSAGE_COLUMNS})
    upsert = values.on_conflict_do_update(
        index_elements=["webhook_source", "message_id"],
        set_={"duplicate_count": _messages.c.duplicate_count + 1,
              "last_duplicate_at": values.excluded.first_received_at},
    )
    returned = (_messages.c.id, _messages.c.duplicate_count, _messages.c.status, _messages.c.sender_id)
    audit_cte = audit_insert.cte("audit")
    with_audit = upsert.returning(*returned, select(audit_cte.c.id).scalar_subquery()).add_cte(audit_cte)
    return audit_insert, upsert.returning(*returned), with_audit


def _store(dialect: str, audit_row: dict, rows: list[dict],
           side: list[Executable]) -> tuple[int, list[tuple]]:
    """Write the audit row, messages and ``side`` statements atomically; the audit id, the upsert's rows."""
    audit_insert, upsert, upsert_with_audit = _statements(dialect)
    audit_params = {f"audit_{k}": v for k, v in audit_row.items()}
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
def _compiled(stmt: Executable, dialect: Dialect) -> Compiled:
    return stmt.compile(dialect=dialect)


def _autocommit(stmt: Executable, params: dict) -> list[tuple]:
    """Run one statement in autocommit on a pooled psycopg connection, its rows if it returns any.

    The Core statement is compiled once and handed to the driver as is: on the hot path this
    costs a third of the CPU of a SQLAlchemy ``Connection.execute`` (bind values here are plain
    str/int/float/datetime; the JSON payload goes as text for its ``::JSON`` cast).
    """
    compiled = _compiled(stmt, db.engine.dialect)
    if "payload" in params:
        params = {**params, "payload": json.dumps(params["payload"])}
    connection = db.engine.raw_connection()
    try:
        driver = connection.driver_connection
        driver.autocommit = True
        try:
            cursor = driver.execute(compiled.string, {**compiled.params, **params})
            return cursor.fetchall() if cursor.description else []
        finally:
            driver.autocommit = False
    except psycopg.OperationalError:
        connection.invalidate()  # a broken connection must not go back to the pool
        raise
    finally:
        connection.close()


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


def _admit(by_sender: dict[str, list[int]], config,
           now: datetime) -> tuple[list[int], list[int], list[dict], bool]:
    """Count each sender's new messages and queue those within the limit.

    Returns the queued ids, the ids over the limit, their rate-limit rows, and whether the
    limiter was down (then every message is admitted: fail open).
    """
    limit = RateLimitItemPerMinute(config["WEBHOOK_RATE_LIMIT_MAX"], config["WEBHOOK_RATE_LIMIT_WINDOW"])
    fused = ratelimit.shares_redis_with_queue()
    if fused:
        from khaacho.tasks import process_message

        tasks = {sender: [huey.serialize_task(process_message.s(i)) for i in ids]
                 for sender, ids in by_sender.items()}
        counts = ratelimit.admit(limit, "webhook-sender", tasks) or [None] * len(by_sender)
    else:
        counts = [ratelimit.add(limit, "webhook-sender", sender, amount=len(ids))
                  for sender, ids in by_sender.items()]
    window = limit.get_expiry()
    window_start = datetime.fromtimestamp(int(now.timestamp()) // window * window, UTC)
    admitted, over, blocked_rows, down = [], [], [], False
    for (sender, ids), count in zip(by_sender.items(), counts, strict=True):
        if count is None:
            down = True
            allowed = len(ids)
        else:
            allowed = max(0, limit.amount - (count - len(ids)))
        admitted += ids[:allowed]
        if ids[allowed:]:
            over += ids[allowed:]
            blocked_rows.append({"phone_number": sender, "window_start": window_start,
                                 "request_count": count, "blocked_count": len(ids) - allowed,
                                 "updated_at": now})
    if fused:
        # The script queued the admitted messages; with Redis down it queued nothing and
        # they stay ``queued`` for the sweep (queueing them would meet the same dead Redis).
        return ([] if down else admitted), over, blocked_rows, down
    return _enqueue(admitted), over, blocked_rows, down


def _after_admission(dialect: str, over: list[int], blocked_rows: list[dict], audit_id: int | None,
                     now: datetime) -> None:
    """Mark the messages over the limit ``rate_limited`` and count them; audit a limiter outage.

    A failure here keeps the acknowledgement: the messages stay ``queued`` for the sweep.
    """
    try:
        with db.engine.begin() as conn:
            if over:
                conn.execute(update(_messages).where(_messages.c.id.in_(over), _messages.c.status == "queued")
                             .values(status="rate_limited", updated_at=now))
            if blocked_rows:
                conn.execute(_rate_limit_upsert(dialect, blocked_rows))
            if audit_id is not None:
                conn.execute(update(audit.table).where(audit.table.c.id == audit_id)
                             .values(reason=LIMITER_DOWN_REASON))
    except SQLAlchemyError as exc:
        log.warning("could not mark %d messages rate limited, left for the sweep: %s",
                    len(over), type(exc).__name__)


def _row(source: str, m: InboundMessage, status: str, now: datetime, elapsed_ms: float,
         request_id: str | None) -> dict:
    plausible = m.timestamp is not None and 0 < m.timestamp < 253402300799
    return {
        "message_id": m.message_id, "webhook_source": source, "phone_number": m.phone_number,
        "sender_id": m.sender_id, "message_type": m.message_type, "message_text": m.text,
        "payload": m.payload, "status": status, "response_time_ms": round(elapsed_ms, 3),
        "duplicate_count": 0,
        "message_timestamp": datetime.fromtimestamp(m.timestamp, UTC) if plausible else None,
        "first_received_at": now, "attempts": 0, "error_count": 0, "request_id": request_id,
        "updated_at": now, "created_at": now,
    }


def _rate_limit_upsert(dialect: str, rows: list[dict]):
    stmt = _INSERTS.get(dialect, postgresql.insert)(_rate_limits).values(rows)
    largest = func.greatest if dialect == "postgresql" else func.max
    return stmt.on_conflict_do_update(
        index_elements=["phone_number", "window_start"],
        set_={
            "request_count": largest(_rate_limits.c.request_count, stmt.excluded.request_count),
            "blocked_count": _rate_limits.c.blocked_count + stmt.excluded.blocked_count,
            "updated_at": stmt.excluded.updated_at,
        },
    )


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


def _enqueue(ids: list[int]) -> list[int]:
    """Queue each committed message, the ids queued; a queue outage leaves it ``queued`` for the sweep."""
    if not ids:
        return []
    from khaacho.tasks import process_message

    queued = []
    for row_id in ids:
        try:
            process_message(row_id)
        except Exception as exc:  # Redis down or any queue error: the sweep picks the row up
            log.warning("could not queue message %s, left for the sweep: %s: %s",
                        row_id, type(exc).__name__, exc)
        else:
            queued.append(row_id)
    return queued


def insert_audit_only(source: str, endpoint: str, client_ip: str | None, reason: str) -> None:
    """Audit a verified request that carried nothing to store (e.g. malformed JSON)."""
    try:
        with db.engine.begin() as conn:
            audit.insert_valid(conn, source, endpoint, client_ip, reason)
    except SQLAlchemyError as exc:
        log.warning("could not audit a webhook: %s", type(exc).__name__)
