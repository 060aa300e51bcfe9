"""Replay: put dead, failed, rate-limited or stale messages back on the queue.

Used by ``flask webhooks replay`` and the dashboard. A replayed message gets a fresh retry
budget and is processed normally, so it still makes at most one order and one reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update

from khaacho.extensions import db
from khaacho.models import REPLAYABLE_STATUSES, WebhookMessage, utcnow
from khaacho.tasks import enqueue_messages

log = logging.getLogger(__name__)
BATCH_SIZE = 500


@dataclass(frozen=True)
class Replayed:
    """What replay did with one message: ``queued``, or left alone with the reason."""

    ref: str
    message_id: int | None
    previous: str | None
    queued: bool
    reason: str = ""


def _requeue(ids: list[int]) -> set[int]:
    """Move the replayable ones of ``ids`` to ``queued``; returns those moved (committed)."""
    moved = set(db.session.scalars(
        update(WebhookMessage)
        .where(WebhookMessage.id.in_(ids), WebhookMessage.status.in_(REPLAYABLE_STATUSES))
        .values(status="queued", attempts=0, next_attempt_at=None, updated_at=utcnow(),
                relayed_at=utcnow())  # queued here, not by the relay
        .returning(WebhookMessage.id)
        .execution_options(synchronize_session=False)
    ))
    db.session.commit()
    return moved


def _enqueue(ids: list[int]) -> str:
    """Queue the tasks; when the queue is down the rows stay ``queued`` for the sweep."""
    try:
        enqueue_messages(ids)
    except Exception as exc:
        log.warning("replay: queue unreachable, %s messages left for the sweep: %s", len(ids), exc)
        return f"queue unreachable ({exc.__class__.__name__}); the sweep will pick it up"
    return ""


def replay_refs(refs: list[str]) -> list[Replayed]:
    """Replay messages by ``webhook_messages.id`` or by the provider's message id (wamid…, SM…)."""
    numeric = [int(ref) for ref in refs if ref.isdigit() and int(ref) < 2**63]
    rows = db.session.execute(
        select(WebhookMessage.id, WebhookMessage.message_id, WebhookMessage.status)
        .where(or_(WebhookMessage.id.in_(numeric), WebhookMessage.message_id.in_(refs)))
    ).all()
    db.session.rollback()
    found = {ref: [row for row in rows if str(row.id) == ref or row.message_id == ref] for ref in refs}
    moved = _requeue([row.id for row in rows]) if rows else set()
    note = _enqueue(sorted(moved)) if moved else ""
    results = []
    for ref in refs:
        if not found[ref]:
            results.append(Replayed(ref, None, None, False, "no such message"))
        for row in found[ref]:
            if row.id in moved:
                results.append(Replayed(ref, row.id, row.status, True, note))
            else:
                allowed = ", ".join(REPLAYABLE_STATUSES)
                results.append(Replayed(ref, row.id, row.status, False,
                                        f"status is {row.status}; only {allowed} messages are replayed"))
    return results


def replay_matching(status: str, since: datetime | None = None, source: str | None = None) -> list[Replayed]:
    """Replay every message with ``status`` (received after ``since``, from ``source``), in batches."""
    query = select(WebhookMessage.id).where(WebhookMessage.status == status).order_by(WebhookMessage.id)
    if since is not None:
        query = query.where(WebhookMessage.created_at >= since)
    if source is not None:
        query = query.where(WebhookMessage.webhook_source == source)
    ids = list(db.session.scalars(query))
    db.session.rollback()
    results = []
    for start in range(0, len(ids), BATCH_SIZE):
        batch = ids[start:start + BATCH_SIZE]
        moved = _requeue(batch)
        note = _enqueue(sorted(moved)) if moved else ""
        for message_id in batch:
            if message_id in moved:
                results.append(Replayed(str(message_id), message_id, status, True, note))
            else:
                results.append(Replayed(str(message_id), message_id, None, False,
                                        f"no longer {status} (processed meanwhile)"))
    return results
