"""Retention: delete webhook data older than N days, in short batches.

Each batch is its own transaction touching at most ``batch_size`` rows, so the intake never
waits long on a lock. After each batch the cleanup sleeps ``PAUSE_RATIO`` times as long as the
batch took: on a small machine the cleanup's backend, WAL and index deletes compete with the
intake for the same cores, and the pause lets the intake's statements run in between (a cleanup
of a million rows under load takes longer, the webhook acks stay fast). Orders are business
records, not webhook data: a message that became an order is kept with the order and its
confirmation. Messages still in flight (``queued``, ``processing``, ``failed``) are left for the worker.
Deleted Twilio messages leave a tombstone (see :mod:`khaacho.tombstones`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, select

from khaacho import tombstones
from khaacho.extensions import db
from khaacho.models import (
    Order,
    OutboundMessage,
    WebhookMessage,
    WebhookPerformanceMetric,
    WebhookRateLimit,
    WebhookSignatureLog,
    utcnow,
)

log = logging.getLogger(__name__)
BATCH_SIZE = 2000
PAUSE_RATIO = 2.0
IN_FLIGHT = ("queued", "processing", "failed")
# Tables deleted on their own, with the column their age is read from.
LOG_TABLES = (
    (WebhookSignatureLog, WebhookSignatureLog.created_at),
    (WebhookRateLimit, WebhookRateLimit.window_start),
    (WebhookPerformanceMetric, WebhookPerformanceMetric.bucket_start),
)


def _old_messages(cutoff: datetime) -> ColumnElement[bool]:
    return (
        (WebhookMessage.created_at < cutoff)
        & WebhookMessage.status.not_in(IN_FLIGHT)
        & ~exists().where(Order.webhook_message_id == WebhookMessage.id)
    )


def count_old(cutoff: datetime) -> dict[str, int]:
    """How many rows a cleanup with this cutoff would delete, per table."""
    old = _old_messages(cutoff)
    counts = {
        "webhook_messages": db.session.scalar(select(func.count()).select_from(WebhookMessage).where(old)),
        "outbound_messages": db.session.scalar(
            select(func.count()).select_from(OutboundMessage)
            .join(WebhookMessage, WebhookMessage.id == OutboundMessage.webhook_message_id).where(old)
        ),
    }
    for model, column in LOG_TABLES:
        old = select(func.count()).select_from(model).where(column < cutoff)
        counts[model.__tablename__] = db.session.scalar(old)
    return counts


def _pause(started: float, ratio: float) -> None:
    time.sleep((time.monotonic() - started) * ratio)


def _delete_messages(cutoff: datetime, batch_size: int, pause: float) -> tuple[int, int]:
    messages = replies = 0
    while True:
        started = time.monotonic()
        ids = list(db.session.scalars(
            select(WebhookMessage.id).where(_old_messages(cutoff)).order_by(WebhookMessage.id).limit(batch_size)
        ))
        if not ids:
            return messages, replies
        # A Twilio replay carries no timestamp; the tombstone is what makes it stale later.
        tombstones.bury(db.session.connection(), db.session.scalars(
            select(WebhookMessage.message_id)
            .where(WebhookMessage.id.in_(ids), WebhookMessage.webhook_source == "twilio")
        ))
        # Dependants first: SQLite does not enforce ON DELETE CASCADE without a pragma.
        replies += db.session.execute(
            delete(OutboundMessage).where(OutboundMessage.webhook_message_id.in_(ids))
        ).rowcount
        messages += db.session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(ids))).rowcount
        db.session.commit()
        if len(ids) < batch_size:
            return messages, replies
        _pause(started, pause)


def _delete_rows(model: type[db.Model], column, cutoff: datetime, batch_size: int, pause: float) -> int:
    deleted = 0
    while True:
        started = time.monotonic()
        batch = select(model.id).where(column < cutoff).order_by(model.id).limit(batch_size).scalar_subquery()
        count = db.session.execute(delete(model).where(model.id.in_(batch))).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted
        _pause(started, pause)


def cleanup(days: int, dry_run: bool = False, batch_size: int = BATCH_SIZE,
            pause: float = PAUSE_RATIO) -> dict[str, int]:
    """Delete (or with ``dry_run`` only count) rows older than ``days``; returns the count per table."""
    cutoff = utcnow() - timedelta(days=days)
    if dry_run:
        return count_old(cutoff)
    messages, replies = _delete_messages(cutoff, batch_size, pause)
    counts = {"webhook_messages": messages, "outbound_messages": replies}
    for model, column in LOG_TABLES:
        counts[model.__tablename__] = _delete_rows(model, column, cutoff, batch_size, pause)
    log.info("cleanup: deleted rows older than %s days: %s", days, counts, extra={"deleted": counts})
    return counts
