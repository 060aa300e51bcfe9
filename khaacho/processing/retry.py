"""Failures of ``process_message``: exponential backoff with jitter, then ``dead``."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from flask import current_app
from sqlalchemy import BindParameter, ColumnElement, and_, update

from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage, one_of, utcnow

log = logging.getLogger(__name__)
MAX_ERROR_LENGTH = 2000


def in_attempt(message_id: int | BindParameter, attempt: int | BindParameter) -> ColumnElement[bool]:
    """The message while it is still ours: processing, in the attempt we claimed.

    The sweep may hand a message that looked stuck to another worker; writes fenced by the
    attempt number then match nothing instead of overwriting the newer attempt's result.
    """
    return and_(WebhookMessage.id == message_id, one_of(WebhookMessage.status, ["processing"]),
                WebhookMessage.attempts == attempt)


def backoff_delay(retry: int, base: float) -> float:
    """Seconds before retry number ``retry`` (1, 2, …): base, 2×base, 4×base…, plus up to 25 % jitter."""
    return base * 2 ** (retry - 1) * random.uniform(1.0, 1.25)


def record_failure(message_id: int, attempt: int, reason: str, permanent: bool = False,
                   outbound_id: int | None = None) -> tuple[str, float | None]:
    """Mark the message ``failed`` (to retry after the returned delay) or ``dead``; commits.

    ``outbound_id`` is given when the provider refused the reply: the reply is then known not
    to have gone out, so a later attempt may send it. Returns ``("skipped", None)`` when the
    message is no longer in this attempt.
    """
    config = current_app.config
    reason = reason[:MAX_ERROR_LENGTH]
    exhausted = attempt > config["TASK_MAX_RETRIES"]
    if permanent or exhausted:
        status, delay = "dead", None
        error = reason if permanent else f"gave up after {attempt} attempts: {reason}"
    else:
        status, delay = "failed", backoff_delay(attempt, config["TASK_RETRY_BASE_SECONDS"])
        error = reason
    if outbound_id is not None:
        db.session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == outbound_id, OutboundMessage.status == "sending")
            .values(status="failed" if permanent else "pending", last_error=reason)
            .execution_options(synchronize_session=False)
        )
    next_attempt = utcnow() + timedelta(seconds=delay) if delay is not None else None
    changed = db.session.execute(
        update(WebhookMessage)
        .where(in_attempt(message_id, attempt))
        .values(status=status, error_message=error, error_count=WebhookMessage.error_count + 1,
                next_attempt_at=next_attempt)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not changed:
        return "skipped", None
    if status == "dead":
        log.error("message %s is dead after attempt %s: %s", message_id, attempt, error,
                  extra={"message_id": message_id})
    else:
        log.warning("message %s failed attempt %s, retrying in %.1fs: %s", message_id, attempt, delay, error,
                    extra={"message_id": message_id})
    return status, delay
