"""Ops move an order along its lifecycle: the move, its ops action and one notice to the shop."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import OpsAction, Order, OrderStatus, OutboundMessage, ReplyStatus
from khaacho.orders import lifecycle
from khaacho.replies.notices import order_notice

# What the desk and ``flask orders status`` offer; pending and expired belong to the shop and the clock.
DESK_STATUSES = tuple(s.value for s in (OrderStatus.CONFIRMED, OrderStatus.DISPATCHED,
                                        OrderStatus.DELIVERED, OrderStatus.CANCELLED))
STATUS_ACTION = "order_status"
MAX_NOTE = 500


def notice_note(moved: Moved) -> str:
    """What became of the shop's notice, for the operator."""
    if moved.notice == ReplyStatus.NEEDS_TEMPLATE:
        return ("the shop is outside the 24-hour window and no template is configured: "
                "the notice waits as needs_template")
    if moved.notice is None:
        return "the shop had already been told"
    return "the shop is told"


class NoSuchOrder(LookupError):
    """The order does not exist."""


class NotAllowed(ValueError):
    """The lifecycle does not allow this move from the order's current status."""


@dataclass(frozen=True)
class Moved:
    """An accepted move."""

    order_id: int
    old: str
    new: str
    notice: str | None  # the notice's status when it was stored (None: the shop had been told already)


def change_status(order_id: int, new: str, note: str | None = None, user_id: int | None = None) -> Moved:
    """Move the order to ``new`` for ops, record it in ``ops_actions`` and tell the shop once.

    The move, its record and the notice are one transaction; the conditional update inside it makes two
    operators (or an operator and the shop) racing for the same order move it once.
    """
    order = db.session.get(Order, order_id)
    if order is None:
        raise NoSuchOrder(order_id)
    current = order.status
    old = lifecycle.change_status(order_id, new, lifecycle.OPS) if new in DESK_STATUSES else None
    if old is None:
        db.session.rollback()
        raise NotAllowed(f"order #{order_id} is {current}; it cannot become {new}")
    note = (note or "").strip()[:MAX_NOTE] or None
    detail = {"from": old, "to": new} | ({"note": note} if note else {})
    db.session.add(OpsAction(user_id=user_id, action=STATUS_ACTION, order_id=order_id,
                             detail=json.dumps(detail, ensure_ascii=False)))
    notice_id = order_notice(order_id, new)  # stored in this transaction, sent once it commits
    db.session.commit()
    notice = None if notice_id is None else db.session.scalar(
        select(OutboundMessage.status).where(OutboundMessage.id == notice_id))
    return Moved(order_id, old, new, notice)
