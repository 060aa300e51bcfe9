"""Admission: the per-sender rate limit and the enqueue of newly stored messages, in batches.

A webhook request commits its messages, hands the new ``queued`` ones to its process's
:class:`Admitter` and answers. The admitter's thread gathers what arrives within
``WEBHOOK_ADMIT_BATCH_MS`` and admits it in one go: one Redis script call counts every sender
of the batch against the shared limit and queues the messages within it (limits' fixed window,
Huey's queue), then one transaction marks those over the limit ``rate_limited`` and counts them
in ``webhook_rate_limits``. A request therefore costs one database round trip and no Redis
round trip, and the Redis round trip a batch costs is shared by every request in it.

Acknowledging before admission is safe: the message is stored either way. If admission fails
(Redis down, the database gone, the worker killed before its batch ran) the row stays
``queued`` and the sweep (``khaacho.processing.sweep``) queues it once it is
``SWEEP_AFTER_SECONDS`` old, the same fail-open as a limiter outage. A worker that exits
normally admits what it still holds first. ``WEBHOOK_ADMIT_BATCH_MS = 0`` admits inline, in the
request after its commit (the unit tests do, so Huey's immediate mode runs there).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app
from limits import RateLimitItemPerMinute
from sqlalchemy import func, update
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db, huey
from khaacho.models import WebhookMessage, WebhookRateLimit, dialect_insert, utcnow
from khaacho.webhooks import audit, ratelimit

log = logging.getLogger(__name__)
LIMITER_DOWN_REASON = "rate limiter unavailable, failed open"
MAX_BATCH = 1000  # a batch is admitted at once when it reaches this many messages
_messages = WebhookMessage.__table__
_rate_limits = WebhookRateLimit.__table__
_admitters_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message committed ``queued`` and not yet admitted; ``audit_id`` is its request's audit row,
    set when that row should be marked if the limiter turns out to be down."""

    row_id: int
    sender: str
    audit_id: int | None = None


def admit(messages: list[NewMessage]) -> None:
    """Count the senders, queue the messages within the limit, mark the rest; in an app context.

    Never raises for Redis or database trouble: what could not be done is left ``queued``.
    """
    by_sender: dict[str, list[int]] = {}
    for m in messages:
        by_sender.setdefault(m.sender, []).append(m.row_id)
    if not by_sender:
        return
    now = utcnow()
    over, blocked_rows, down = _count_and_queue(by_sender, current_app.config, now)
    unaudited = sorted({m.audit_id for m in messages if m.audit_id is not None}) if down else []
    if blocked_rows or unaudited:
        _after_admission(over, blocked_rows, unaudited, now)


def _count_and_queue(by_sender: dict[str, list[int]], config,
                     now: datetime) -> tuple[list[int], list[dict], bool]:
    """Count each sender's new messages and queue those within the limit.

    Returns the ids over the limit, their rate-limit rows, and whether the limiter was down
    (then every message is let through: fail open).
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
    # The script queued the admitted messages already; with Redis down it queued nothing and
    # they stay ``queued`` for the sweep (queueing them would meet the same dead Redis).
    if not fused:
        _enqueue(admitted)
    return over, blocked_rows, down


def _after_admission(over: list[int], blocked_rows: list[dict], audit_ids: list[int],
                     now: datetime) -> None:
    """Mark the messages over the limit ``rate_limited`` and count them; audit a limiter outage.

    A failure here loses nothing: the messages stay ``queued`` for the sweep.
    """
    try:
        with db.engine.begin() as conn:
            if over:
                conn.execute(update(_messages).where(_messages.c.id.in_(over), _messages.c.status == "queued")
                             .values(status="rate_limited", updated_at=now))
            if blocked_rows:
                conn.execute(_rate_limit_upsert(conn.dialect.name, blocked_rows))
            if audit_ids:
                conn.execute(update(audit.table).where(audit.table.c.id.in_(audit_ids))
                             .values(reason=LIMITER_DOWN_REASON))
    except SQLAlchemyError as exc:
        log.warning("could not mark %d messages rate limited, left for the sweep: %s",
                    len(over), type(exc).__name__)


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
    """Queue each message; a queue outage leaves the row ``queued`` for the sweep."""
    from khaacho.tasks import process_message

    for row_id in ids:
        try:
            process_message(row_id)
        except Exception as exc:  # Redis down or any queue error: the sweep picks the row up
            log.warning("could not queue message %s, left for the sweep: %s: %s",
                        row_id, type(exc).__name__, exc)


class Admitter:
    """One app's admission queue in this process, admitted by a thread in batches.

    The thread starts with the first message a process submits (so after gunicorn forks) and
    again in a forked child; :meth:`flush` admits what is pending at once, and runs at exit.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.delay = app.config["WEBHOOK_ADMIT_BATCH_MS"] / 1000.0
        self._cond = threading.Condition()
        self._pending: list[NewMessage] = []
        self._pid: int | None = None
        atexit.register(self.flush)

    def submit(self, messages: list[NewMessage]) -> None:
        """Admit ``messages`` within the batch delay."""
        with self._cond:
            if self._pid != os.getpid():
                self._pending = []  # a forked child starts empty: the parent admits its own
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="khaacho-admitter", daemon=True).start()
            was_empty = not self._pending
            self._pending.extend(messages)
            # Wake the thread when a batch starts or fills, not for every message.
            if was_empty or len(self._pending) >= MAX_BATCH:
                self._cond.notify()

    def flush(self) -> None:
        """Admit everything pending now, in the calling thread."""
        with self._cond:
            batch, self._pending = self._pending, []
        self._admit(batch)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                # Let the batch fill: a message waits at most ``delay`` for its neighbours.
                deadline = time.monotonic() + self.delay
                while len(self._pending) < MAX_BATCH and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
            self._admit(batch)

    def _admit(self, batch: list[NewMessage]) -> None:
        if not batch:
            return
        try:
            with self.app.app_context():
                admit(batch)
        except Exception:  # the thread must outlive any failure; the sweep covers the batch
            log.exception("admitting %d messages failed, left for the sweep", len(batch))


def submit(messages: list[NewMessage]) -> None:
    """Admit the current app's newly stored ``queued`` messages: batched by its admitter, or now."""
    app = current_app._get_current_object()
    if app.config["WEBHOOK_ADMIT_BATCH_MS"] <= 0:
        admit(messages)
        return
    admitter = app.extensions.get("khaacho_admitter")
    if admitter is None:
        with _admitters_lock:
            admitter = app.extensions.get("khaacho_admitter")
            if admitter is None:
                admitter = app.extensions["khaacho_admitter"] = Admitter(app)
    admitter.submit(messages)
