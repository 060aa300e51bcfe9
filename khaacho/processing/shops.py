"""Shops: one row per WhatsApp customer, upserted by the worker for each message it processes.

A shop is known by its phone (E.164), its Meta business-scoped user id, or both; each is unique
when known. Every write is a single conditional statement or an ``INSERT … ON CONFLICT``, so
consumers processing messages of the same shop at once cannot make two rows for it: the
unique constraints decide, and a statement that loses a race fails its transaction, which the
worker retries like any other failure.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import String, and_, bindparam, case, exists, null, select, update
from sqlalchemy.orm import aliased

from khaacho import statements
from khaacho.events import MEDIA_KINDS, Location
from khaacho.extensions import db
from khaacho.models import ACKNOWLEDGEMENT, OutboundMessage, Shop, WebhookMessage, dialect_insert

_shops = Shop.__table__


def upsert(phone: str | None, user_id: str | None, profile_name: str | None, seen_at: datetime) -> int | None:
    """The shop of a sender, created or brought up to date (name, last inbound, linked ids); its id.

    Not committed: it rides in the transaction of the message that showed the sender. The row
    it inserts or updates stays locked until that transaction ends (on PostgreSQL the
    ``ON CONFLICT DO UPDATE`` locks it; SQLite serialises writers), so one message of a shop
    takes effect at a time.
    """
    if phone is None and user_id is None:
        return None
    dialect = db.engine.dialect.name
    values = {"_phone": phone, "_user_id": user_id, "_profile_name": profile_name, "_seen_at": seen_at}
    if phone is not None and user_id is not None:
        statements.fetch(_link_phone(), values)
    return statements.first(_upsert(dialect, phone is not None, user_id is not None), values).id


@functools.cache
def _upsert(dialect: str, by_phone: bool, with_user_id: bool):
    """The upsert for a sender known by phone, user id or both (built once per shape)."""
    phone, user_id = bindparam("_phone", type_=String), bindparam("_user_id", type_=String)
    other = aliased(_shops)
    if not with_user_id:
        user = null()
    elif by_phone:
        # A user id another shop already holds is not copied here (it stays with that shop).
        user = case((exists().where(other.c.user_id == user_id, other.c.phone_number.is_distinct_from(phone)),
                     null()), else_=user_id)
    else:
        user = user_id
    seen_at = bindparam("_seen_at", type_=_shops.c.last_inbound_at.type)
    stmt = dialect_insert(dialect, _shops).values(
        phone_number=phone if by_phone else null(), user_id=user,
        profile_name=bindparam("_profile_name", type_=String), last_inbound_at=seen_at, created_at=seen_at,
    )
    excluded = stmt.excluded
    later = case((excluded.last_inbound_at > _shops.c.last_inbound_at, excluded.last_inbound_at),
                 else_=_shops.c.last_inbound_at)
    changes = {"last_inbound_at": later,
               "profile_name": case((excluded.profile_name.is_(None), _shops.c.profile_name),
                                    else_=excluded.profile_name)}
    if by_phone and with_user_id:
        changes["user_id"] = case((excluded.user_id.is_(None), _shops.c.user_id), else_=excluded.user_id)
    key = _shops.c.phone_number if by_phone else _shops.c.user_id
    return stmt.on_conflict_do_update(index_elements=[key.name], set_=changes).returning(_shops.c.id)


@functools.cache
def _link_phone():
    """Give a shop known only by this user id its phone, unless the phone has a shop of its own."""
    other = aliased(_shops)
    phone = bindparam("_phone", type_=String)
    return (update(_shops)
            .where(_shops.c.user_id == bindparam("_user_id", type_=String), _shops.c.phone_number.is_(None),
                   ~exists().where(other.c.phone_number == phone))
            .values(phone_number=phone))


def media_acknowledged_since(shop_id: int | None, since: datetime) -> bool:
    """Whether the shop was sent an acknowledgement of a photo, voice note or document since ``since``."""
    if shop_id is None:
        return False
    replies, messages = OutboundMessage.__table__, WebhookMessage.__table__
    return db.session.scalar(select(exists().where(
        replies.c.shop_id == shop_id, replies.c.kind == ACKNOWLEDGEMENT, replies.c.created_at >= since,
        messages.c.id == replies.c.webhook_message_id, messages.c.message_type.in_(MEDIA_KINDS),
    ))) or False


def set_location(shop_id: int, location: Location) -> None:
    """Keep the location the shop shared last as its delivery location."""
    db.session.execute(update(_shops).where(_shops.c.id == shop_id).values(
        latitude=location.latitude, longitude=location.longitude, address=location.label))


def move_number(old_phone: str | None, new_phone: str | None) -> str:
    """Move the shop of ``old_phone`` to ``new_phone`` (a user_changed_number); what happened, for the log."""
    if old_phone is None or new_phone is None:
        return "no valid old and new number to move the shop between"
    taken = exists().where(aliased(_shops).c.phone_number == new_phone)
    moved = db.session.execute(
        update(_shops).where(and_(_shops.c.phone_number == old_phone, ~taken)).values(phone_number=new_phone)
    ).rowcount
    if moved:
        return f"shop moved from {old_phone} to {new_phone}"
    if db.session.scalar(select(_shops.c.id).where(_shops.c.phone_number == new_phone)) is not None:
        return f"{new_phone} already has a shop; the shop of {old_phone} was left as it is"
    return f"no shop with {old_phone} to move to {new_phone}"
