"""The shops page: who orders, how often, and for how much this month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import case, func, or_, select

from khaacho.desk.orders import matching_shops
from khaacho.extensions import db
from khaacho.models import Order, OrderStatus, Shop

PER_PAGE = 100
# What counts as sold: orders the shop confirmed, whatever happened to them since, except a cancel.
SOLD = tuple(s.value for s in (OrderStatus.CONFIRMED, OrderStatus.DISPATCHED, OrderStatus.DELIVERED))


@dataclass(frozen=True)
class ShopRow:
    """A shop and its orders at a glance."""

    shop: Shop
    orders: int
    last_order_at: datetime | None
    month_total: Decimal


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first of this month."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def shop_rows(q: str = "", offset: int = 0) -> tuple[list[ShopRow], bool]:
    """A page of shops (latest to write first) with their order figures; and whether more follow."""
    query = select(Shop)
    if q:
        query = query.where(or_(Shop.id.in_(matching_shops(q)), Shop.user_id == q))
    shops = list(db.session.scalars(
        query.order_by(Shop.last_inbound_at.desc(), Shop.id.desc()).offset(offset).limit(PER_PAGE + 1)))
    more, shops = len(shops) > PER_PAGE, shops[:PER_PAGE]
    figures = {}
    if shops:
        this_month = (Order.created_at >= month_start()) & Order.status.in_(SOLD)
        figures = {row.shop_id: row for row in db.session.execute(
            select(Order.shop_id, func.count(Order.id).label("orders"),
                   func.max(Order.created_at).label("last_order_at"),
                   func.coalesce(func.sum(case((this_month, Order.total), else_=0)), 0).label("month_total"))
            .where(Order.shop_id.in_([s.id for s in shops])).group_by(Order.shop_id))}
    rows = []
    for shop in shops:
        f = figures.get(shop.id)
        rows.append(ShopRow(shop, f.orders if f else 0, f.last_order_at if f else None,
                            Decimal(f.month_total) if f else Decimal("0")))
    return rows, more
