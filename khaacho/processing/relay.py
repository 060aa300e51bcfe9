"""The outbox relay: stored ``queued`` messages to Huey, each exactly once, within each sender's limit.

Intake only commits a message ``queued`` (the outbox row). The relay, a thread in every consumer
process (:func:`start_in_consumer`), takes them from there in three steps:

1. **Claim.** One statement stamps ``relayed_at`` on up to :data:`BATCH_SIZE` queued rows not yet
   relayed, picked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers), and
   commits before anything is queued: however many relays run (two consumers on each of N
   machines), a row is claimed by one of them once.
2. **Limit.** :class:`~khaacho.processing.senders.SenderLimit` counts each sender's new messages;
   those over the allowance become ``rate_limited`` (kept, replayable) and are counted in
   ``webhook_rate_limits``. With the limit's storage unreachable every message goes through
   (fail open) and an audit row with :data:`~khaacho.processing.senders.LIMITER_DOWN_REASON`
   counts them for the dashboard's limiter tile.
3. **Enqueue** through Huey's API (``process_message``). Should the queue be down, the claimed
   rows stay ``queued`` and the sweep (:mod:`khaacho.processing.sweep`) queues them once they
   are ``SWEEP_AFTER_SECONDS`` old.

It wakes on PostgreSQL's ``LISTEN khaacho_intake`` (intake's statement notifies at commit), and
looks anyway every :data:`LISTEN_TIMEOUT_SECONDS`; on SQLite it looks every
:data:`POLL_SECONDS`. Under load it drains at most once per :data:`MIN_DRAIN_INTERVAL_SECONDS`,
so one drain takes every message that came meanwhile: a drain's statement and its wake-up cost
about as much as enqueueing a message, and a busy intake notifies hundreds of times a second.
A message that comes after a quiet spell is drained at once. Tests call :func:`drain` (Huey's
immediate mode then runs the tasks).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import psycopg
from flask import Flask, current_app
from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db
from khaacho.models import (
    INTAKE_CHANNEL,
    WebhookMessage,
    WebhookRateLimit,
    WebhookSignatureLog,
    dialect_insert,
    one_of,
    utcnow,
)
from khaacho.ops import switches
from khaacho.processing.senders import LIMITER_DOWN_REASON, SenderLimit

log = logging.getLogger(__name__)
BATCH_SIZE = 500
POLL_SECONDS = 0.25  # SQLite: nothing announces a new row
LISTEN_TIMEOUT_SECONDS = 5.0  # PostgreSQL: a look even without a notification (a safety net)
MIN_DRAIN_INTERVAL_SECONDS = 0.02  # PostgreSQL: the most a message waits for the drain after the last
PAUSE_AFTER_ERROR_SECONDS = 1.0
AUDIT_ENDPOINT = "outbox relay"
QUEUED, RATE_LIMITED = "queued", "rate_limited"
_LIMIT_KEY = "khaacho_sender_limit"
_messages = WebhookMessage.__table__
_rate_limits = WebhookRateLimit.__table__
_started_in: set[int] = set()  # pids whose relay thread runs
_start_lock = threading.Lock()


def drain() -> int:
    """Relay every unrelayed ``queued`` message, batch by batch, in an app context; how many were claimed."""
    total = 0
    while True:
        claimed = relay_once()
        total += claimed
        if claimed < BATCH_SIZE:
            return total


def relay_once(batch_size: int = BATCH_SIZE) -> int:
    """Claim, limit and enqueue one batch, in an app context; how many messages were claimed.

    Nothing is claimed while processing is paused: the messages wait ``queued`` for the resume.
    """
    claimed = _claim(batch_size)
    if claimed:
        _enqueue(_limit(claimed))
    return len(claimed)


# Unrelayed queued rows, oldest first, none while processing is paused (the claim's own condition).
# The status is a constant in the SQL, so even PostgreSQL's generic plan of the prepared statement
# reads the partial index of unrelayed rows, not every queued row of a backlog.
_PICKED = (select(_messages.c.id)
           .where(one_of(_messages.c.status, [QUEUED]), _messages.c.relayed_at.is_(None),
                  ~switches.paused_clause(switches.PROCESSING))
           .order_by(_messages.c.id).limit(bindparam("_batch")).with_for_update(skip_locked=True))
_CLAIM = (update(_messages).where(_messages.c.id.in_(_PICKED.scalar_subquery()))
          .values(relayed_at=bindparam("_now"), updated_at=bindparam("_now"))
          .returning(_messages.c.id, _messages.c.sender_id, _messages.c.webhook_source))


def _claim(batch_size: int) -> list[Row]:
    """Stamp up to ``batch_size`` unrelayed queued rows; their id, sender and source, by id.

    One statement, committed on its own (autocommit: no BEGIN and COMMIT round trips).
    """
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = conn.execute(_CLAIM, {"_batch": batch_size, "_now": utcnow()}).all()
    return sorted(rows)


def _limit(claimed: list[Row]) -> list[int]:
    """The claimed ids within their senders' allowances, in order; the rest marked ``rate_limited``."""
    config = current_app.config
    limit = _sender_limit(current_app)
    item = limit.item(config)
    by_sender: dict[str, list[Row]] = defaultdict(list)
    for row in claimed:
        by_sender[row.sender_id].append(row)
    now = utcnow()
    window = item.get_expiry()
    window_start = datetime.fromtimestamp(int(now.timestamp()) // window * window, UTC)
    admitted, over, blocked, unchecked = [], [], [], Counter()
    for sender, rows in by_sender.items():
        allowance = limit.take(item, sender, len(rows))
        if allowance is None:
            admitted += [r.id for r in rows]
            unchecked.update(r.webhook_source for r in rows)
            continue
        admitted += [r.id for r in rows[:allowance.allowed]]
        if rows[allowance.allowed:]:
            over += [r.id for r in rows[allowance.allowed:]]
            blocked.append({"phone_number": sender, "window_start": window_start,
                            "request_count": allowance.count,
                            "blocked_count": len(rows) - allowance.allowed, "updated_at": now})
    if over or unchecked:
        _record_limits(over, blocked, unchecked, now)
    return sorted(admitted)


def _record_limits(over: list[int], blocked: list[dict], unchecked: Counter, now: datetime) -> None:
    """Mark the messages over the limit and count them; audit the ones let through unchecked."""
    try:
        with db.engine.begin() as conn:
            if over:
                conn.execute(update(_messages).where(_messages.c.id.in_(over), _messages.c.status == QUEUED)
                             .values(status=RATE_LIMITED, updated_at=now))
                conn.execute(_rate_limit_upsert(conn.dialect.name, blocked))
            if unchecked:
                conn.execute(insert(WebhookSignatureLog.__table__), [
                    {"webhook_source": source, "endpoint": AUDIT_ENDPOINT, "is_valid": True,
                     "reason": LIMITER_DOWN_REASON, "request_count": count, "last_seen_at": now,
                     "created_at": now}
                    for source, count in sorted(unchecked.items())])
    except SQLAlchemyError as exc:  # the over-limit rows stay queued: the sweep queues them later
        log.warning("could not mark %d messages rate limited: %s", len(over), type(exc).__name__)


def _rate_limit_upsert(dialect: str, rows: list[dict]):
    stmt = dialect_insert(dialect, _rate_limits).values(rows)
    largest = func.greatest if dialect == "postgresql" else func.max
    return stmt.on_conflict_do_update(
        index_elements=["phone_number", "window_start"],
        set_={
            "request_count": largest(_rate_limits.c.request_count, stmt.excluded.request_count),
            "blocked_count": _rate_limits.c.blocked_count + stmt.excluded.blocked_count,
            "updated_at": stmt.excluded.updated_at,
        },
    )


def _enqueue(ids: list[int]) -> None:
    """Queue each message; after a queue error the rest stay ``queued`` for the sweep."""
    from khaacho.tasks import process_message

    for done, row_id in enumerate(ids):
        try:
            process_message(row_id)
        except Exception as exc:  # Redis down or any queue error: the sweep picks the rows up
            log.warning("queue unavailable, %d messages left for the sweep: %s: %s",
                        len(ids) - done, type(exc).__name__, exc)
            return


def _sender_limit(app: Flask) -> SenderLimit:
    limit = app.extensions.get(_LIMIT_KEY)
    if limit is None:
        limit = app.extensions.setdefault(_LIMIT_KEY, SenderLimit.from_config(app.config))
    return limit


def start_in_consumer(app: Flask) -> bool:
    """Start this process's relay thread unless it runs already; True when this call started it.

    Huey runs its startup hooks once per consumer worker thread, so this is called several
    times per process; one thread per process relays.
    """
    with _start_lock:
        if os.getpid() in _started_in:
            return False
        _started_in.add(os.getpid())
    threading.Thread(target=run, args=(app,), name="khaacho-relay", daemon=True).start()
    log.info("outbox relay started in process %s", os.getpid())
    return True


def run(app: Flask) -> None:
    """Relay forever: wake on notifications (PostgreSQL) or poll (SQLite); survive any error."""
    while True:
        try:
            with app.app_context():
                if db.engine.dialect.name == "postgresql":
                    _listen_and_relay()
                else:
                    drain()
            time.sleep(POLL_SECONDS)
        except (SQLAlchemyError, psycopg.Error) as exc:  # the database is away: one line a second
            first_line = (str(exc).strip().splitlines() or [""])[0]
            log.warning("relay: database unavailable, trying again in %ss: %s: %s",
                        PAUSE_AFTER_ERROR_SECONDS, type(exc).__name__, first_line)
            time.sleep(PAUSE_AFTER_ERROR_SECONDS)
        except Exception:
            log.exception("relay failed; starting again in %ss", PAUSE_AFTER_ERROR_SECONDS)
            time.sleep(PAUSE_AFTER_ERROR_SECONDS)


def _listen_and_relay() -> None:
    """Listen on the intake channel and drain after each wake-up, until the connection fails."""
    pooled = db.engine.raw_connection()
    connection: psycopg.Connection = pooled.driver_connection
    pooled.detach()  # ours for as long as we listen: the pool neither counts nor resets it
    try:
        connection.autocommit = True
        connection.execute(f"LISTEN {INTAKE_CHANNEL}")
        while True:
            drained = time.monotonic()
            drain()
            # Wait for one notification (the others that came meanwhile wake the next drain at
            # once), then for the rest of the interval, so the next drain takes what came by then.
            for _ in connection.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                pass
            time.sleep(max(0.0, drained + MIN_DRAIN_INTERVAL_SECONDS - time.monotonic()))
    finally:
        connection.close()
