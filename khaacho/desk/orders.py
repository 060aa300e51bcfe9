"""The orders list (keyset-paged, newest first) and everything the page of one order shows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, or_, select, tuple_
from sqlalchemy.orm import selectinload

from khaacho.desk.filters import OrderFilters, day_range
from khaacho.extensions import db
from khaacho.models import OpsAction, Order, OrderItem, OutboundMessage, Shop, WebhookMessage

PER_PAGE = 50
# A search by name or phone looks at this many shops at most, so a one-letter search stays cheap.
MAX_SHOPS_SEARCHED = 500
# The conversation of one order is bounded: a shop chatting for days should not make the page slow.
MAX_CONVERSATION = 300


def matching_shops(q: str) -> Select:
    """Ids of the shops whose phone or WhatsApp name contains the search."""
    digits = re.sub(r"\D", "", q)
    matches = [Shop.profile_name.icontains(q, autoescape=True)]
    if digits:
        matches.append(Shop.phone_number.contains(digits, autoescape=True))
    return select(Shop.id).where(or_(*matches)).limit(MAX_SHOPS_SEARCHED)


def filtered(filters: OrderFilters) -> Select:
    """Orders matching the filters (not yet ordered or paged)."""
    query = select(Order)
    if filters.status:
        query = query.where(Order.status == filters.status)
    low, high = day_range(filters.start, filters.end)
    if low is not None:
        query = query.where(Order.created_at >= low)
    if high is not None:
        query = query.where(Order.created_at < high)
    if filters.q:
        shop_ids = list(db.session.scalars(matching_shops(filters.q)))
        query = query.where(or_(Order.shop_id.in_(shop_ids), Order.phone_number == filters.q))
    return query


@dataclass(frozen=True)
class OrdersPage:
    """One page of orders, newest first, and the cursor of the next (older) page."""

    orders: list[Order]
    shops: dict[int, Shop]
    next_before: int | None
    first: bool


def page_of(filters: OrderFilters) -> OrdersPage:
    """The page after the cursor: a keyset on (created_at, id), so page 2,000 costs what page 1 does."""
    query = filtered(filters)
    anchor = None if filters.before is None else db.session.scalar(
        select(Order.created_at).where(Order.id == filters.before))
    if anchor is not None:
        query = query.where(tuple_(Order.created_at, Order.id) < tuple_(anchor, filters.before))
    rows = list(db.session.scalars(
        query.options(selectinload(Order.items))
        .order_by(Order.created_at.desc(), Order.id.desc()).limit(PER_PAGE + 1)))
    orders = rows[:PER_PAGE]
    shop_ids = {o.shop_id for o in orders if o.shop_id is not None}
    shops = ({s.id: s for s in db.session.scalars(select(Shop).where(Shop.id.in_(shop_ids)))}
             if shop_ids else {})
    more = len(rows) > PER_PAGE
    return OrdersPage(orders, shops, orders[-1].id if more else None, anchor is None)


@dataclass(frozen=True)
class Entry:
    """One line of an order's conversation: a message from the shop or one to it."""

    at: datetime
    inbound: WebhookMessage | None = None
    outbound: OutboundMessage | None = None


@dataclass(frozen=True)
class OrderView:
    """An order with its shop, its conversation in time order and the ops actions on it."""

    order: Order
    shop: Shop | None
    conversation: list[Entry]
    actions: list[OpsAction]


def _instant(moment: datetime) -> float:
    # SQLite hands back naive UTC, PostgreSQL aware times in the session's zone.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _conversation(order: Order) -> list[Entry]:
    """The sender's messages from the one that started the order until the shop's next order, and replies."""
    start = order.message
    same_shop = (Order.shop_id == order.shop_id) if order.shop_id is not None else (
        Order.phone_number == order.phone_number)
    upto = db.session.scalar(
        select(Order.created_at)
        .where(same_shop, tuple_(Order.created_at, Order.id) > tuple_(order.created_at, order.id))
        .order_by(Order.created_at, Order.id).limit(1))
    query = select(WebhookMessage).where(WebhookMessage.sender_id == start.sender_id,
                                         WebhookMessage.created_at >= start.created_at)
    if upto is not None:
        query = query.where(WebhookMessage.created_at < upto)
    inbound = list(db.session.scalars(
        query.order_by(WebhookMessage.created_at, WebhookMessage.id).limit(MAX_CONVERSATION)))
    inbound_ids = [m.id for m in inbound] or [start.id]
    outbound = list(db.session.scalars(
        select(OutboundMessage)
        .where(or_(OutboundMessage.order_id == order.id, OutboundMessage.webhook_message_id.in_(inbound_ids)))
        .order_by(OutboundMessage.created_at, OutboundMessage.id).limit(MAX_CONVERSATION)))
    entries = [Entry(m.created_at, inbound=m) for m in inbound]
    entries += [Entry(m.created_at, outbound=m) for m in outbound]
    return sorted(entries, key=lambda e: (_instant(e.at), e.outbound is not None))


def order_view(order_id: int) -> OrderView | None:
    """Everything the page of one order shows, or None when there is no such order."""
    order = db.session.get(Order, order_id, options=[
        selectinload(Order.items).selectinload(OrderItem.product), selectinload(Order.message)])
    if order is None:
        return None
    shop = db.session.get(Shop, order.shop_id) if order.shop_id is not None else None
    actions = list(db.session.scalars(
        select(OpsAction).options(selectinload(OpsAction.user))
        .where(OpsAction.order_id == order.id).order_by(OpsAction.created_at, OpsAction.id)))
    return OrderView(order, shop, _conversation(order), actions)


def action_text(action: OpsAction) -> str:
    """An ops action's detail for people: ``pending → confirmed · van 2`` rather than its JSON."""
    try:
        detail = json.loads(action.detail or "{}")
    except ValueError:
        return action.detail or ""
    if not isinstance(detail, dict) or "to" not in detail:
        return action.detail or ""
    text = f"{detail.get('from', '?')} → {detail['to']}"
    return f"{text} · {detail['note']}" if detail.get("note") else text


def map_link(shop: Shop | None) -> str | None:
    """An OpenStreetMap link to the shop's delivery location, when it shared one."""
    if shop is None or shop.latitude is None or shop.longitude is None:
        return None
    lat, lon = f"{shop.latitude:.6f}", f"{shop.longitude:.6f}"
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"
