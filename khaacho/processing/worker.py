"""One received message becomes at most one order and one reply, however often this runs.

Exactly-once rests on three things: the claim (a conditional UPDATE, so one worker holds a
message at a time, fenced by its attempt number), the unique ``webhook_message_id`` on
``orders`` and ``outbound_messages`` (the order and its reply are written in one
transaction), and the reply's status, committed as ``sending`` *before* the provider is
called. A run that finds a reply still ``sending`` knows an earlier worker died between
calling the provider and recording the answer; the reply may well have gone out, so it is
marked ``unknown`` and not sent again: a missing confirmation is visible on the dashboard,
a doubled one reaches the shopkeeper. A provider that refuses (an error answer or no
connection) is known not to have delivered, so that reply is sent again on the retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update

from khaacho.extensions import db
from khaacho.logs import request_id_var
from khaacho.models import Order, OutboundMessage, WebhookMessage, utcnow
from khaacho.ops import switches
from khaacho.orders.catalog import active_catalog
from khaacho.processing import ordering
from khaacho.processing.retry import in_attempt, record_failure
from khaacho.replies import MAX_LENGTH, PermanentSendError, SendError, compose, send_reply

log = logging.getLogger(__name__)

CLAIMABLE = ("queued", "failed")
NO_REPLY_TYPES = frozenset({"reaction"})
HELD_NOTE = "reply held while replies are paused; it is sent on resume"
UNKNOWN_NOTE = "a worker stopped while sending the reply; not sent again, it may have been delivered"


@dataclass(frozen=True)
class Outcome:
    """What became of one run: the message's status (or ``skipped``) and any retry delay."""

    status: str
    retry_in: float | None = None


@dataclass(frozen=True)
class Claim:
    """The fields of a claimed message; ``attempt`` fences every later write to it."""

    id: int
    attempt: int
    first_try: bool  # never attempted before, so no order or reply can exist yet
    source: str
    provider_message_id: str
    customer: str
    message_type: str
    text: str | None
    request_id: str | None


@dataclass(frozen=True)
class PendingSend:
    """A reply recorded as ``sending`` and committed, to be handed to the provider."""

    outbound_id: int
    recipient: str
    body: str


_messages, _replies = WebhookMessage.__table__, OutboundMessage.__table__
# The hot path's statements are built once; ``onupdate`` still stamps ``updated_at``.
CLAIM = (
    update(_messages)
    .where(_messages.c.id == bindparam("_id"), _messages.c.status.in_(CLAIMABLE))
    .values(status="processing", attempts=_messages.c.attempts + 1, next_attempt_at=None,
            updated_at=bindparam("_now"))
    .returning(_messages.c.attempts, _messages.c.error_count, _messages.c.webhook_source,
               _messages.c.message_id, _messages.c.phone_number, _messages.c.sender_id,
               _messages.c.message_type, _messages.c.message_text, _messages.c.request_id)
)
ADD_REPLY = insert(_replies).returning(_replies.c.id)
MARK_SENT = (update(_replies).where(_replies.c.id == bindparam("_id"))
             .values(status="sent", provider_message_id=bindparam("_provider_id"), sent_at=bindparam("_now"),
                     last_error=None))
FINISH = (update(_messages).where(in_attempt(bindparam("_id"), bindparam("_attempt")))
          .values(status=bindparam("_status"), processed_at=bindparam("_now"),
                  error_message=bindparam("_note"), next_attempt_at=None))


def _claim(message_id: int) -> Claim | None:
    row = db.session.execute(CLAIM, {"_id": message_id, "_now": utcnow()}).one_or_none()
    if row is None:
        return None
    return Claim(message_id, row.attempts, row.attempts == 1 and row.error_count == 0, row.webhook_source,
                 row.message_id, row.phone_number or row.sender_id, row.message_type, row.message_text,
                 row.request_id)


def claim(message_id: int) -> Claim | None:
    """Take a queued or failed message for processing (committed); None when it is not claimable."""
    job = _claim(message_id)
    db.session.commit()
    return job


def process(message_id: int) -> Outcome:
    """Claim the message, make its order and reply, send the reply once and complete the message.

    The claim is committed together with the order and the ``sending`` reply, so a worker
    killed before that commit leaves the message as it found it, for the sweep.
    """
    try:
        job = _claim(message_id)
        if job is None:
            db.session.rollback()
            log.info("message %s is not queued or failed; nothing to do", message_id,
                     extra={"message_id": message_id})
            return Outcome("skipped")
        ignored = job.message_type in NO_REPLY_TYPES
        pending, note = (None, None) if ignored else _prepare_reply(job)
    except Exception as exc:
        db.session.rollback()
        log.exception("message %s could not be prepared", message_id, extra={"message_id": message_id})
        return _fail_unprepared(message_id, f"{exc.__class__.__name__}: {exc}")
    token = request_id_var.set(job.request_id)
    try:
        if pending is None:
            return _finish(job, "ignored" if ignored else "completed", note=note)
        return _send(job, pending)
    finally:
        request_id_var.reset(token)


def _fail_unprepared(message_id: int, reason: str) -> Outcome:
    """Count a failed attempt that never got as far as committing its claim."""
    job = claim(message_id)
    if job is None:
        return Outcome("skipped")
    return Outcome(*record_failure(job.id, job.attempt, reason))


def _send(job: Claim, pending: PendingSend) -> Outcome:
    try:
        provider_id = send_reply(
            job.source, pending.recipient, pending.body,
            reply_to=job.provider_message_id, callback_data=f"outbound:{pending.outbound_id}",
        )
    except SendError as exc:
        permanent = isinstance(exc, PermanentSendError)
        return Outcome(*record_failure(job.id, job.attempt, str(exc), permanent, pending.outbound_id))
    except Exception as exc:
        # Not a provider answer: whether the reply went out is unknown, so it stays ``sending``.
        log.exception("message %s: sending the reply failed", job.id, extra={"message_id": job.id})
        return Outcome(*record_failure(job.id, job.attempt, f"{exc.__class__.__name__}: {exc}"))
    return _finish(job, "completed", sent=(pending.outbound_id, provider_id))


def _prepare_reply(job: Claim) -> tuple[PendingSend | None, str | None]:
    """Add the order and the reply; returns the reply to send, committed as ``sending``, or a note.

    Without a reply to send nothing is committed here: ``_finish`` commits the claim with the
    final status. On a first try the lookups are skipped; should an order or reply exist after
    all, its unique key fails the transaction and the retry takes the lookup path.
    """
    outbound = None if job.first_try else db.session.execute(
        select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.recipient, OutboundMessage.body)
        .where(OutboundMessage.webhook_message_id == job.id)).one_or_none()
    if outbound is None:
        order_id = None if job.first_try else db.session.scalar(
            select(Order.id).where(Order.webhook_message_id == job.id))
        catalog = active_catalog()
        lines = []
        if order_id is None:
            lines = ordering.read_lines(job.text, catalog)
            order_id, items = ordering.create_order(job.id, job.customer, lines)
        else:
            items = ordering.order_items(order_id)
        body = compose.shorten(ordering.reply_body(order_id, items, lines, catalog), MAX_LENGTH[job.source])
        held = switches.is_paused(switches.REPLIES)
        outbound_id = db.session.execute(ADD_REPLY, {
            "webhook_message_id": job.id, "provider": job.source, "recipient": job.customer, "body": body,
            "status": "held" if held else "sending", "attempts": 0 if held else 1,
        }).scalar_one()
        if held:
            return None, HELD_NOTE  # committed by ``_finish`` with the message's final status
        db.session.commit()
        return PendingSend(outbound_id, job.customer, body), None
    pending = PendingSend(outbound.id, outbound.recipient, outbound.body)
    if outbound.status == "held":
        return None, HELD_NOTE
    if outbound.status in ("pending", "failed"):
        _set_outbound(outbound.id, outbound.status, status="sending", attempts=OutboundMessage.attempts + 1)
        return pending, None
    if outbound.status == "sending":
        log.warning("message %s: %s", job.id, UNKNOWN_NOTE, extra={"message_id": job.id})
        _set_outbound(outbound.id, outbound.status, status="unknown", last_error=UNKNOWN_NOTE)
        return None, UNKNOWN_NOTE
    return None, None


def _set_outbound(outbound_id: int, current: str, **values) -> None:
    """Move a reply from ``current`` to new values and commit."""
    db.session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id, OutboundMessage.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _finish(job: Claim, status: str, note: str | None = None, sent: tuple[int, str] | None = None) -> Outcome:
    """Record the sent reply and the message's final status in one transaction."""
    now = utcnow()
    if sent is not None:
        db.session.execute(MARK_SENT, {"_id": sent[0], "_provider_id": sent[1], "_now": now})
    changed = db.session.execute(FINISH, {"_id": job.id, "_attempt": job.attempt, "_status": status,
                                          "_now": now, "_note": note}).rowcount
    db.session.commit()
    if not changed:
        log.warning("message %s was handed to another worker before attempt %s finished", job.id, job.attempt,
                    extra={"message_id": job.id})
        return Outcome("skipped")
    log.info("message %s %s", job.id, status, extra={"message_id": job.id})
    return Outcome(status)
