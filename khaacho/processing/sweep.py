"""The sweep: re-queue messages that a killed worker or a queue outage left behind.

A message is stuck when it stayed ``queued`` or ``processing`` longer than
``SWEEP_AFTER_SECONDS`` (its task was lost: Redis was down when the relay enqueued it, or
the worker running it was killed), or when it is ``failed`` and its retry is that much
overdue (the scheduled retry was lost with the queue). Rows are picked with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so consumers sweeping at once split the rows
between them; SQLite serialises writers, and the touched ``updated_at`` keeps a second
sweep from taking the same rows again. A swept row is stamped ``relayed_at`` too, so the relay
(:mod:`khaacho.processing.relay`) does not queue it a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from khaacho.extensions import db
from khaacho.models import WebhookMessage, utcnow

log = logging.getLogger(__name__)
BATCH_SIZE = 500


def bury_repeat_crashes(after_seconds: int) -> int:
    """Mark ``dead`` the stuck ``processing`` messages that used up their attempts; returns how many.

    A message whose processing kills the worker every time would otherwise be re-queued forever.
    """
    limit = current_app.config["TASK_MAX_RETRIES"] + 1
    cutoff = utcnow() - timedelta(seconds=after_seconds)
    buried = db.session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.status == "processing", WebhookMessage.updated_at < cutoff,
               WebhookMessage.attempts >= limit)
        .values(status="dead", error_count=WebhookMessage.error_count + 1,
                error_message=f"the worker stopped during each of {limit} attempts")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if buried:
        log.error("sweep: %s messages dead after their worker stopped %s times", buried, limit)
    return buried


def requeue_stuck(after_seconds: int | None = None, batch_size: int = BATCH_SIZE) -> Iterator[list[int]]:
    """Set stuck messages back to ``queued``, one committed batch at a time; yields each batch's ids.

    The caller enqueues each batch; a message in a batch that fails to enqueue stays ``queued``
    and is found again by a later sweep.
    """
    after = current_app.config["SWEEP_AFTER_SECONDS"] if after_seconds is None else after_seconds
    bury_repeat_crashes(after)
    cutoff = utcnow() - timedelta(seconds=after)
    stuck = or_(
        and_(WebhookMessage.status.in_(("queued", "processing")), WebhookMessage.updated_at < cutoff),
        and_(WebhookMessage.status == "failed", WebhookMessage.next_attempt_at < cutoff),
    )
    while True:
        picked = (select(WebhookMessage.id).where(stuck).order_by(WebhookMessage.id).limit(batch_size)
                  .with_for_update(skip_locked=True))
        ids = list(db.session.scalars(
            update(WebhookMessage)
            .where(WebhookMessage.id.in_(picked.scalar_subquery()))
            .values(status="queued", updated_at=utcnow(), relayed_at=utcnow())
            .returning(WebhookMessage.id)
            .execution_options(synchronize_session=False)
        ))
        db.session.commit()
        if ids:
            log.warning("sweep: re-queued %s stuck messages", len(ids))
            yield ids
        if len(ids) < batch_size:
            return
