"""Order notices: messages to a shop that answer none of its messages (expiry, the desk's status changes).

:func:`order_notice` stores the notice once per (order, status), in the caller's transaction, and
sends it after that transaction commits, through the queue. Within 24 hours of the shop's last
message it is free-form text; outside that window WhatsApp takes only an approved template, so
the notice uses the configured one (Meta ``WHATSAPP_TEMPLATE_ORDER_UPDATE``, Twilio
``TWILIO_CONTENT_SID_ORDER_UPDATE``), or stays ``needs_template`` for ops to see.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from khaacho.extensions import db
from khaacho.models import (
    STATUS_UPDATE,
    Order,
    OutboundMessage,
    ReplyStatus,
    Shop,
    WebhookMessage,
    dialect_insert,
    utcnow,
)
from khaacho.ops import switches
from khaacho.queue import app_task
from khaacho.replies import PermanentSendError, SendError, dialogue, send_reply

log = logging.getLogger(__name__)
WINDOW = timedelta(hours=24)
_AFTER_COMMIT = "khaacho_notices_to_send"
_replies = OutboundMessage.__table__


def dedup_key(order_id: int, status: str) -> str:
    """The key that makes a notice (or the answer announcing a status) unique per order and status."""
    return f"order:{order_id}:{status}"


def window_open(shop_id: int | None) -> bool:
    """Whether the shop wrote to us within the last 24 hours (free-form messages allowed)."""
    if shop_id is None:
        return False
    last = db.session.scalar(select(Shop.last_inbound_at).where(Shop.id == shop_id))
    if last is None:
        return False
    if last.tzinfo is None:  # SQLite hands back naive UTC
        return last >= utcnow().replace(tzinfo=None) - WINDOW
    return last >= utcnow() - WINDOW


def has_template(provider: str) -> bool:
    """Whether an order-update template is configured for the provider."""
    config = current_app.config
    key = "WHATSAPP_TEMPLATE_ORDER_UPDATE" if provider == "whatsapp" else "TWILIO_CONTENT_SID_ORDER_UPDATE"
    return bool(config[key])


def notice_text(language: str, order_id: int, status: str) -> str:
    """The free-form text of a notice."""
    if status == "expired":
        return dialogue.say(language, "expired", n=order_id, hours=current_app.config["ORDER_CONFIRM_HOURS"])
    return dialogue.say(language, "status", n=order_id, status=dialogue.status_word(language, status))


def order_notice(order_id: int, status: str) -> int | None:
    """Store the shop's notice that the order is now ``status`` (not committed); the new reply's id.

    None when the order is unknown or the notice was already stored. A stored notice goes out
    after the caller commits: free-form inside the 24-hour window, else as the template, else
    it stays ``needs_template``.
    """
    order = db.session.execute(
        select(Order.phone_number, Order.shop_id, Order.language, WebhookMessage.webhook_source)
        .join(WebhookMessage, WebhookMessage.id == Order.webhook_message_id)
        .where(Order.id == order_id)).one_or_none()
    if order is None or order.phone_number is None:
        return None
    body = notice_text(order.language, order_id, status)
    payload = None
    if window_open(order.shop_id):
        state = ReplyStatus.PENDING
    elif has_template(order.webhook_source):
        state = ReplyStatus.PENDING
        payload = {"template": {"params": [str(order_id), dialogue.status_word(order.language, status)]}}
    else:
        state = ReplyStatus.NEEDS_TEMPLATE
    if state == ReplyStatus.PENDING and switches.is_paused(switches.REPLIES):
        state = ReplyStatus.HELD  # sent by the resume, like any held reply
    stmt = dialect_insert(db.engine.dialect.name, _replies).values(
        dedup_key=dedup_key(order_id, status), order_id=order_id, shop_id=order.shop_id, kind=STATUS_UPDATE,
        provider=order.webhook_source, recipient=order.phone_number, body=body, payload=payload,
        status=state.value, created_at=utcnow(), updated_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(_replies.c.id)
    outbound_id = db.session.execute(stmt).scalar_one_or_none()
    if outbound_id is not None and state == ReplyStatus.PENDING:
        db.session().info.setdefault(_AFTER_COMMIT, []).append(outbound_id)
    return outbound_id


@event.listens_for(Session, "after_commit")
def _send_committed(session: Session) -> None:
    for outbound_id in session.info.pop(_AFTER_COMMIT, ()):
        send_notice(outbound_id)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def _set(outbound_id: int, current: str, **values) -> int:
    changed = db.session.execute(
        update(OutboundMessage).where(OutboundMessage.id == outbound_id, OutboundMessage.status == current)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return changed


def deliver(outbound_id: int) -> str:
    """Send one ``pending`` notice, claimed first so it goes out once; its new status.

    A provider that may take it later leaves it ``pending`` and raises, so the task retries.
    """
    if not _set(outbound_id, ReplyStatus.PENDING, status=ReplyStatus.SENDING,
                attempts=OutboundMessage.attempts + 1):
        return "skipped"
    row = db.session.execute(select(OutboundMessage.provider, OutboundMessage.recipient, OutboundMessage.body,
                                    OutboundMessage.payload).where(OutboundMessage.id == outbound_id)).one()
    try:
        provider_id = send_reply(row.provider, row.recipient, row.body,
                                 callback_data=f"outbound:{outbound_id}", payload=row.payload)
    except PermanentSendError as exc:
        _set(outbound_id, ReplyStatus.SENDING, status=ReplyStatus.FAILED, last_error=str(exc)[:2000])
        log.error("notice %s not sent: %s", outbound_id, exc)
        return ReplyStatus.FAILED
    except SendError as exc:
        _set(outbound_id, ReplyStatus.SENDING, status=ReplyStatus.PENDING, last_error=str(exc)[:2000])
        raise
    _set(outbound_id, ReplyStatus.SENDING, status=ReplyStatus.SENT, provider_message_id=provider_id,
         sent_at=utcnow(), last_error=None)
    return ReplyStatus.SENT


def resend_stalled(after: timedelta) -> int:
    """Queue again the notices still ``pending`` after ``after`` (their task was lost); how many.

    A notice left ``sending`` that long had its worker die mid-send: it may have gone out, so it
    is marked ``unknown`` rather than sent twice.
    """
    cutoff = utcnow() - after
    notice = OutboundMessage.webhook_message_id.is_(None)
    db.session.execute(update(OutboundMessage).where(
        notice, OutboundMessage.status == ReplyStatus.SENDING, OutboundMessage.updated_at < cutoff)
        .values(status=ReplyStatus.UNKNOWN, last_error="a worker stopped while sending the notice")
        .execution_options(synchronize_session=False))
    stalled = list(db.session.scalars(select(OutboundMessage.id).where(
        notice, OutboundMessage.status == ReplyStatus.PENDING, OutboundMessage.updated_at < cutoff)))
    db.session.commit()
    for outbound_id in stalled:
        send_notice(outbound_id)
    return len(stalled)


@app_task(retries=5, retry_delay=30)
def send_notice(outbound_id: int) -> None:
    """Send one stored notice (once, whichever consumer runs it)."""
    deliver(outbound_id)
