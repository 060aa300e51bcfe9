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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, exists, insert, or_, select, update

from khaacho import events, statements
from khaacho.events import InboundMessage
from khaacho.extensions import db
from khaacho.logs import request_id_var
from khaacho.models import ACKNOWLEDGEMENT, UNFINISHED, OutboundMessage, WebhookMessage, one_of, utcnow
from khaacho.ops import switches
from khaacho.orders.catalog import VERSION_COLUMNS
from khaacho.processing import conversation, kinds, shops
from khaacho.processing.prompts import INTERACTIVE_BODY, Reply
from khaacho.processing.retry import in_attempt, record_failure
from khaacho.replies import MAX_LENGTH, PermanentSendError, SendError, compose, dialogue, send_reply

log = logging.getLogger(__name__)

CLAIMABLE = ("queued", "failed")
# A shop sending several photos of its list at once is told once that a person will look.
MEDIA_ACK_WINDOW = timedelta(minutes=10)
MEDIA_ACKED_NOTE = "the shop was told about its media in the last 10 minutes; not told again"
HELD_NOTE = "reply held while replies are paused; it is sent on resume"
UNKNOWN_NOTE = "a worker stopped while sending the reply; not sent again, it may have been delivered"
# How soon a message whose sender has an older message still in hand is tried again.
WAIT_FOR_OLDER_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    """What became of one run: the message's status (or ``skipped``, ``paused``, ``waiting``), any retry."""

    status: str
    retry_in: float | None = None
    successor: int | None = None  # the sender's next message, waiting for this one: queue it now
    due: datetime | None = None  # when the claimed message became due, for the queue-wait timing


@dataclass(frozen=True)
class Claim:
    """The fields of a claimed message; ``attempt`` fences every later write to it."""

    id: int
    attempt: int
    first_try: bool  # never attempted before, so no order or reply can exist yet
    source: str
    provider_message_id: str
    sender_id: str  # the key a sender's messages are ordered by
    customer: str
    phone_number: str | None
    message_type: str
    text: str | None
    payload: object
    sent_at: datetime | None  # the message's own timestamp
    request_id: str | None
    due: datetime | None  # when it was queued (relayed, swept, replayed) or its retry fell due
    catalog_version: tuple  # the product catalog's, read by the claim (the matcher is rebuilt when it moved)

    def event(self) -> InboundMessage:
        """The typed event of the claimed message."""
        return kinds.event_of(self.source, self.message_type, self.text, self.payload,
                              self.provider_message_id, self.customer, self.phone_number)


@dataclass(frozen=True)
class PendingSend:
    """A reply recorded as ``sending`` and committed, to be handed to the provider."""

    outbound_id: int
    recipient: str
    body: str
    payload: dict | None = None


_messages, _replies = WebhookMessage.__table__, OutboundMessage.__table__
_me, _other = _messages.c, _messages.alias("other").c
# Without both timestamps (Twilio signs none), or within the same second, arrival decides.
_OLDER_IN_HAND = exists().where(
    _other.sender_id == _me.sender_id, one_of(_other.status, UNFINISHED), _other.id != _me.id,
    or_(_other.message_timestamp < _me.message_timestamp,
        and_(or_(_me.message_timestamp.is_(None), _other.message_timestamp.is_(None),
                 _other.message_timestamp == _me.message_timestamp),
             _other.id < _me.id)),
)
# The sender's oldest relayed message still queued after this one (it waits for this one). Bound
# by values, not correlated: SQLite's RETURNING names columns without their table.
_SUCCESSOR = (
    select(_other.id)
    .where(_other.sender_id == bindparam("_sender"), one_of(_other.status, ["queued"]),
           _other.relayed_at.isnot(None), _other.id != bindparam("_id"))
    .order_by(_other.message_timestamp, _other.id).limit(1).scalar_subquery()
)
_CLAIMED = (_me.attempts, _me.error_count, _me.webhook_source, _me.message_id, _me.phone_number,
            _me.sender_id, _me.message_type, _me.message_text, _me.payload, _me.message_timestamp,
            _me.request_id, _me.relayed_at, _me.next_attempt_at, *VERSION_COLUMNS)
# The hot path's statements are built once, each stamping ``updated_at`` itself. The claim
# leaves ``next_attempt_at`` as it was (the finish or the next failure overwrites it), so it
# returns when the message became due, for the queue-wait timing, and it returns the catalog's
# version, so reading an order needs no statement of its own to know whether the matcher is current.
CLAIM = (
    update(_messages)
    .where(_me.id == bindparam("_id"), one_of(_me.status, CLAIMABLE))
    .values(status="processing", attempts=_me.attempts + 1, updated_at=bindparam("_now"))
    .returning(*_CLAIMED)
)
# The same claim in one statement with the checks that come first: processing is not paused, and
# no older message of the sender is unfinished (see :func:`process`).
CLAIM_IN_TURN = CLAIM.where(~switches.paused_clause(switches.PROCESSING), ~_OLDER_IN_HAND)
# Why a message was not claimed in turn: its status (None: no such row) and the processing switch.
NOT_CLAIMED = select(_me.status, switches.paused_clause(switches.PROCESSING).label("paused")).where(
    _me.id == bindparam("_id"))
# The reply is ``held`` when replies are paused at the moment it is stored (no read of its own).
_REPLIES_PAUSED = switches.paused_clause(switches.REPLIES)
ADD_REPLY = (insert(_replies)
             .values(status=case((_REPLIES_PAUSED, "held"), else_="sending"),
                     attempts=case((_REPLIES_PAUSED, 0), else_=1))
             .returning(_replies.c.id, _replies.c.status))
MARK_SENT = (update(_replies).where(_replies.c.id == bindparam("_outbound_id"))
             .values(status="sent", provider_message_id=bindparam("_provider_id"), sent_at=bindparam("_now"),
                     last_error=None, updated_at=bindparam("_now")))
FINISH = (update(_messages).where(in_attempt(bindparam("_id"), bindparam("_attempt")))
          .values(status=bindparam("_status"), processed_at=bindparam("_now"),
                  error_message=bindparam("_note"), context_message_id=bindparam("_context"),
                  next_attempt_at=None, updated_at=bindparam("_now"))
          .returning(_SUCCESSOR.label("successor")))
# On PostgreSQL the reply's update rides on the finish as a data-modifying CTE: one statement.
FINISH_SENT = FINISH.add_cte(MARK_SENT.cte("sent"))
NEXT_WAITING = select(_SUCCESSOR)


def _claim(message_id: int, statement=CLAIM) -> Claim | None:
    row = statements.first(statement, {"_id": message_id, "_now": utcnow()})
    if row is None:
        return None
    due = max((t for t in (row.relayed_at, row.next_attempt_at) if t is not None), default=None)
    return Claim(message_id, row.attempts, row.attempts == 1 and row.error_count == 0, row.webhook_source,
                 row.message_id, row.sender_id, row.phone_number or row.sender_id, row.phone_number,
                 row.message_type, row.message_text, row.payload, row.message_timestamp, row.request_id, due,
                 (row.catalog_newest, row.catalog_changed))


def claim(message_id: int) -> Claim | None:
    """Take a queued or failed message for processing (committed); None when it is not claimable."""
    job = _claim(message_id)
    db.session.commit()
    return job


def process(message_id: int) -> Outcome:
    """Claim the message, make its order and reply, send the reply once and complete the message.

    The claim is committed together with the order and the ``sending`` reply, so a worker
    killed before that commit leaves the message as it found it, for the sweep. Nothing is
    claimed while processing is paused (the message stays ``queued`` for the resume) or while an
    older message of the same sender is unfinished: a shop's messages take effect in the order
    it sent them (provider timestamp, then arrival), so "2 kg sugar" then "cancel" is never
    applied the other way round, whichever consumers hold them. Different senders never wait
    for each other. Both checks are conditions of the claim's own statement.
    """
    try:
        job = _claim(message_id, CLAIM_IN_TURN)
        if job is None:
            db.session.rollback()
            return _not_claimed(message_id)
        event = job.event()
        decision = kinds.decide(event)
        if decision.reply is None:
            pending, note = None, _join(decision.note, _shop_for(job, event)[1])
        else:
            pending, note = _prepare_reply(job, event, decision.reply)
            note = _join(decision.note, note)
    except Exception as exc:
        db.session.rollback()
        log.exception("message %s could not be prepared", message_id, extra={"message_id": message_id})
        return _fail_unprepared(message_id, f"{exc.__class__.__name__}: {exc}")
    token = request_id_var.set(job.request_id)
    try:
        if pending is None:
            outcome = _finish(job, decision.status, note=note, context=event.context_id)
        else:
            outcome = _send(job, pending, decision.status, note, event.context_id)
    finally:
        request_id_var.reset(token)
    return replace(outcome, due=job.due)


def _not_claimed(message_id: int) -> Outcome:
    """Why a message was not claimed in turn: processing is paused, it is not claimable, or it waits.

    Still claimable and not paused means an older message of its sender was unfinished when the
    claim ran (it may have finished since): it is tried again shortly.
    """
    found = db.session.execute(NOT_CLAIMED, {"_id": message_id}).one_or_none()
    db.session.rollback()
    extra = {"message_id": message_id}
    if found is None or found.status not in CLAIMABLE:
        log.info("message %s is not queued or failed; nothing to do", message_id, extra=extra)
        return Outcome("skipped")
    if found.paused:
        # Left as it is (queued): resuming queues every queued message again.
        log.info("processing is paused; message %s left queued", message_id, extra=extra)
        return Outcome("paused")
    log.info("message %s waits for an older message of its sender", message_id, extra=extra)
    return Outcome("waiting", retry_in=WAIT_FOR_OLDER_SECONDS)


def _failed(job: Claim, status: str, retry_in: float | None) -> Outcome:
    """The outcome of a failed attempt; a dead message no longer holds up its sender's next one."""
    if status != "dead":
        return Outcome(status, retry_in)
    successor = db.session.scalar(NEXT_WAITING, {"_id": job.id, "_sender": job.sender_id})
    db.session.rollback()
    return Outcome(status, successor=successor)


def _fail_unprepared(message_id: int, reason: str) -> Outcome:
    """Count a failed attempt that never got as far as committing its claim."""
    job = claim(message_id)
    if job is None:
        return Outcome("skipped")
    return Outcome(*record_failure(job.id, job.attempt, reason))


def _send(job: Claim, pending: PendingSend, status: str, note: str | None, context: str | None) -> Outcome:
    try:
        provider_id = send_reply(
            job.source, pending.recipient, pending.body,
            reply_to=job.provider_message_id, callback_data=f"outbound:{pending.outbound_id}",
            payload=pending.payload,
        )
    except SendError as exc:
        permanent = isinstance(exc, PermanentSendError)
        return _failed(job, *record_failure(job.id, job.attempt, str(exc), permanent, pending.outbound_id))
    except Exception as exc:
        # Not a provider answer: whether the reply went out is unknown, so it stays ``sending``.
        log.exception("message %s: sending the reply failed", job.id, extra={"message_id": job.id})
        return _failed(job, *record_failure(job.id, job.attempt, f"{exc.__class__.__name__}: {exc}"))
    return _finish(job, status, note=note, sent=(pending.outbound_id, provider_id), context=context)


def _join(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _shop_for(job: Claim, event: InboundMessage) -> tuple[int | None, str | None]:
    """Upsert the sender's shop (not for group or system messages); its id and a note for ops."""
    if event.group_id is not None:
        return None, None  # a participant of a group is not talking to us one to one
    if event.message_type == events.SYSTEM:
        if event.detail == "user_changed_number":
            return None, shops.move_number(event.phone_number, event.new_phone)
        return None, None
    shop_id = shops.upsert(event.phone_number, event.user_id, event.profile_name, job.sent_at or utcnow())
    if shop_id is not None and event.location is not None:
        shops.set_location(shop_id, event.location)
    return shop_id, None


def _compose(job: Claim, event: InboundMessage, reply: str, shop_id: int | None) -> Reply | str:
    """Act on the message (its order, taps, edits); the reply to send, or a note when there is none."""
    if reply == kinds.LOCATION_ACK:
        label = event.location.label if event.location else None
        return Reply(ACKNOWLEDGEMENT, compose.location_saved(label))
    if reply == kinds.MEDIA_ACK:
        return Reply(ACKNOWLEDGEMENT, compose.media_received(kinds.MEDIA_NAMES[event.message_type]))
    turn = conversation.Turn(job.id, job.source, job.customer, shop_id, dialogue.language_of(event.text),
                             retry=not job.first_try, catalog_version=job.catalog_version)
    return kinds.CONVERSATION[reply](turn, event)


def _prepare_reply(job: Claim, event: InboundMessage, reply: str) -> tuple[PendingSend | None, str | None]:
    """Add the shop, the order and the reply; returns the reply to send, committed as ``sending``, or a note.

    Without a reply to send nothing is committed here: ``_finish`` commits the claim with the
    final status. On a first try the lookups are skipped; should an order or reply exist after
    all, its unique key fails the transaction and the retry takes the lookup path.
    """
    outbound = None if job.first_try else db.session.execute(
        select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.recipient, OutboundMessage.body,
               OutboundMessage.payload)
        .where(OutboundMessage.webhook_message_id == job.id)).one_or_none()
    if outbound is None:
        shop_id, _ = _shop_for(job, event)
        if reply == kinds.MEDIA_ACK and shops.media_acknowledged_since(shop_id, utcnow() - MEDIA_ACK_WINDOW):
            return None, MEDIA_ACKED_NOTE
        answer = _compose(job, event, reply, shop_id)
        if isinstance(answer, str):
            return None, answer  # committed by ``_finish`` with the message's final status
        limit = INTERACTIVE_BODY if answer.payload and job.source == "whatsapp" else MAX_LENGTH[job.source]
        body = compose.shorten(answer.body, limit)
        added = statements.first(ADD_REPLY, {
            "webhook_message_id": job.id, "shop_id": shop_id, "kind": answer.kind, "provider": job.source,
            "recipient": job.customer, "body": body, "payload": answer.payload, "order_id": answer.order_id,
            "dedup_key": answer.dedup_key,
        })
        if added.status == "held":
            return None, HELD_NOTE  # committed by ``_finish`` with the message's final status
        db.session.commit()
        return PendingSend(added.id, job.customer, body, answer.payload), None
    pending = PendingSend(outbound.id, outbound.recipient, outbound.body, outbound.payload)
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


def _finish(job: Claim, status: str, note: str | None = None, sent: tuple[int, str] | None = None,
            context: str | None = None) -> Outcome:
    """Record the sent reply and the message's final status at once; commits.

    The same statement finds the sender's next queued message, which waited for this one. A
    sent reply was committed ``sending`` before it went out, so no transaction is open then: on
    PostgreSQL its update and the message's are one statement in autocommit (no BEGIN and COMMIT
    round trips), on SQLite two statements in one transaction. Otherwise the status is committed
    with the claim (and any held reply) of the open transaction.
    """
    now = utcnow()
    params = {"_id": job.id, "_attempt": job.attempt, "_status": status, "_now": now, "_note": note,
              "_context": context, "_sender": job.sender_id}
    statement = FINISH
    if sent is not None:
        params.update(_outbound_id=sent[0], _provider_id=sent[1])
        if db.engine.dialect.name == "postgresql":
            db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            statement = FINISH_SENT
        else:
            db.session.execute(MARK_SENT, params)
    finished = statements.first(statement, params)
    db.session.commit()
    if finished is None:
        log.warning("message %s was handed to another worker before attempt %s finished", job.id, job.attempt,
                    extra={"message_id": job.id})
        return Outcome("skipped")
    log.info("message %s %s", job.id, status, extra={"message_id": job.id})
    return Outcome(status, successor=finished.successor)
