"""Retention: delete webhook data older than N days, in short batches.

Each batch is its own transaction touching at most ``batch_size`` rows, so the intake never
waits long on a lock. Orders are business records, not webhook data: a message that became
an order is kept with the order and its confirmation. Messages still in flight
(``queued``, ``processing``, ``failed``) are left for the worker.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, select

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
BATCH_SIZE = 5000
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


def _delete_messages(cutoff: datetime, batch_size: int) -> tuple[int, int]:
    messages = replies = 0
    while True:
        ids = list(db.session.scalars(
            select(WebhookMessage.id).where(_old_messages(cutoff)).order_by(WebhookMessage.id).limit(batch_size)
        ))
        if not ids:
            return messages, replies
        # Dependants first: SQLite does not enforce ON DELETE CASCADE without a pragma.
        replies += db.session.execute(
            delete(OutboundMessage).where(OutboundMessage.webhook_message_id.in_(ids))
        ).rowcount
        messages += db.session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(ids))).rowcount
        db.session.commit()
        if len(ids) < batch_size:
            return messages, replies


def _delete_rows(model: type[db.Model], column, cutoff: datetime, batch_size: int) -> int:
    deleted = 0
    while True:
        batch = select(model.id).where(column < cutoff).order_by(model.id).limit(batch_size).scalar_subquery()
        count = db.session.execute(delete(model).where(model.id.in_(batch))).rowcount
        db.session.commit()
        deleted += count
        if count < batch_size:
            return deleted


def cleanup(days: int, dry_run: bool = False, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete (or with ``dry_run`` only count) rows older than ``days``; returns the count per table."""
    cutoff = utcnow() - timedelta(days=days)
    if dry_run:
        return count_old(cutoff)
    messages, replies = _delete_messages(cutoff, batch_size)
    counts = {"webhook_messages": messages, "outbound_messages": replies}
    for model, column in LOG_TABLES:
        counts[model.__tablename__] = _delete_rows(model, column, cutoff, batch_size)
    log.info("cleanup: deleted rows older than %s days: %s", days, counts, extra={"deleted": counts})
    return counts
