"""Orders made from messages: at most one per message, priced from the catalog."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import Order, OrderItem, Product
from khaacho.orders.catalog import active_catalog
from khaacho.orders.matcher import OrderLine, read_order
from khaacho.replies import compose

CENT = Decimal("0.01")


def read_lines(text: str | None) -> list[OrderLine]:
    """The order lines in a message, matched against the active catalog."""
    return read_order(text or "", active_catalog()) if text and text.strip() else []


def create_order(message_id: int, customer: str, lines: list[OrderLine]) -> Order | None:
    """Add (not commit) the order for the matched lines; None when no line matched a product."""
    if not any(line.product_id is not None for line in lines):
        return None
    order = Order(webhook_message_id=message_id, phone_number=customer, status="received")
    total = Decimal("0")
    for line in lines:
        quantity = Decimal(str(round(line.quantity, 3)))
        order.items.append(OrderItem(product_id=line.product_id, quantity=quantity, unit=line.unit,
                                     unit_price=line.unit_price, raw_text=line.text))
        if line.product_id is not None and line.unit_price is not None:
            total += (quantity * line.unit_price).quantize(CENT)
    order.total = total
    db.session.add(order)
    return order


def order_reply_lines(order: Order) -> list[compose.ReplyLine]:
    """The order's items as reply lines, with product names and the units they are sold in."""
    ids = {item.product_id for item in order.items if item.product_id is not None}
    products = {row.id: row for row in db.session.execute(
        select(Product.id, Product.name, Product.unit).where(Product.id.in_(ids))
    )} if ids else {}
    lines = []
    for item in order.items:
        product = products.get(item.product_id)
        price = item.unit_price if product is not None else None
        sold_by = product.unit if product is not None and price is None else None
        lines.append(compose.ReplyLine(item.raw_text, product.name if product else None,
                                       Decimal(item.quantity), item.unit, price, sold_by))
    return lines


def reply_body(order: Order | None, lines: list[OrderLine]) -> str:
    """The confirmation for an order, the not-found list, or the how-to-order help."""
    if order is not None:
        return compose.confirmation(order.id, order_reply_lines(order))
    if lines:
        return compose.not_found([line.text for line in lines])
    return compose.help_text()
