"""What a resume releases: the messages left ``queued`` and the replies held while paused.

A held reply is claimed with a conditional ``UPDATE … WHERE status = 'held'`` before it is sent,
so however many consumers run the release, and however often, each reply goes out once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sqlalchemy import select, update

from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage, utcnow
from khaacho.ops import switches
from khaacho.replies import PermanentSendError, SendError, send_reply

log = logging.getLogger(__name__)
HELD = "held"
BATCH_SIZE = 500


def _batches(column, where, batch_size: int) -> Iterator[list[int]]:
    last = 0
    while True:
        ids = list(db.session.scalars(select(column).where(where, column > last).order_by(column)
                                      .limit(batch_size)))
        db.session.commit()
        if ids:
            yield ids
        if len(ids) < batch_size:
            return
        last = ids[-1]


def held_batches(batch_size: int = BATCH_SIZE) -> Iterator[list[int]]:
    """The ids of the held replies, in batches of ascending id."""
    return _batches(OutboundMessage.id, OutboundMessage.status == HELD, batch_size)


def queued_batches(batch_size: int = BATCH_SIZE) -> Iterator[list[int]]:
    """The ids of the relayed messages a paused task left ``queued``, in batches of ascending id.

    Those never relayed are the relay's: it takes them, within their senders' limit, once resumed.
    """
    waiting = (WebhookMessage.status == "queued") & WebhookMessage.relayed_at.isnot(None)
    return _batches(WebhookMessage.id, waiting, batch_size)


def _set(outbound_id: int, current: str, **values) -> int:
    changed = db.session.execute(
        update(OutboundMessage).where(OutboundMessage.id == outbound_id, OutboundMessage.status == current)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return changed


def send_held(outbound_id: int) -> str:
    """Send one held reply unless replies are paused or another worker took it; the reply's new status.

    Raises :class:`SendError` (after putting the reply back to ``held``) when the provider may
    take it later, so the task's retry sends it.
    """
    if switches.is_paused(switches.REPLIES):
        return HELD
    if not _set(outbound_id, HELD, status="sending", attempts=OutboundMessage.attempts + 1):
        return "skipped"
    row = db.session.execute(
        select(OutboundMessage.provider, OutboundMessage.recipient, OutboundMessage.body,
               OutboundMessage.payload, WebhookMessage.message_id)
        .outerjoin(WebhookMessage, WebhookMessage.id == OutboundMessage.webhook_message_id)
        .where(OutboundMessage.id == outbound_id)).one()
    try:
        provider_id = send_reply(row.provider, row.recipient, row.body, reply_to=row.message_id,
                                 callback_data=f"outbound:{outbound_id}", payload=row.payload)
    except PermanentSendError as exc:
        _set(outbound_id, "sending", status="failed", last_error=str(exc)[:2000])
        log.error("held reply %s not sent: %s", outbound_id, exc)
        return "failed"
    except SendError as exc:
        _set(outbound_id, "sending", status=HELD, last_error=str(exc)[:2000])
        raise
    _set(outbound_id, "sending", status="sent", provider_message_id=provider_id, sent_at=utcnow(),
         last_error=None)
    log.info("held reply %s sent", outbound_id)
    return "sent"
