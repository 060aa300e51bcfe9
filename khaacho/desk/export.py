"""The orders CSV: one row per order item, for the warehouse and the spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import aliased

from khaacho.desk.filters import day_range
from khaacho.extensions import db
from khaacho.models import Order, OrderItem, Product, Shop

HEADER = ("order_id", "created_at", "status", "shop_phone", "shop_name", "sku", "product", "quantity",
          "unit", "unit_price", "amount", "order_total")
# A spreadsheet runs a cell starting with one of these as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BATCH = 2000


def cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _number(value: Decimal | None) -> str:
    """A quantity or amount without trailing zeros (``10``, ``2.5``, ``110.00`` stays money-shaped)."""
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _when(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(start: date, end: date, status: str):
    low, high = day_range(start, end)
    product = aliased(Product)
    query = (
        select(Order.id, Order.created_at, Order.status, Order.phone_number, Order.total,
               Shop.phone_number.label("shop_phone"), Shop.profile_name, product.sku, product.name,
               OrderItem.quantity, OrderItem.unit, OrderItem.unit_price, OrderItem.raw_text)
        .outerjoin(Shop, Shop.id == Order.shop_id)
        .outerjoin(OrderItem, OrderItem.order_id == Order.id)
        .outerjoin(product, product.id == OrderItem.product_id)
        .where(Order.created_at >= low, Order.created_at < high)
        .order_by(Order.created_at, Order.id, OrderItem.id)
    )
    return query.where(Order.status == status) if status else query


def rows(start: date, end: date, status: str = "") -> Iterator[tuple[str, ...]]:
    """The CSV rows (header first) of the orders made from ``start`` to ``end`` (inclusive, UTC)."""
    yield HEADER
    result = db.session.execute(_query(start, end, status).execution_options(yield_per=BATCH))
    order_id, head, total = None, (), ""
    for r in result:
        if r.id != order_id:  # an order's own cells are formatted once for all its lines
            order_id = r.id
            head = (str(r.id), _when(r.created_at), r.status, cell(r.shop_phone or r.phone_number),
                    cell(r.profile_name))
            total = _money(r.total)
        amount = r.quantity * r.unit_price if r.unit_price is not None and r.sku is not None else None
        yield (*head, cell(r.sku), cell(r.name if r.sku is not None else r.raw_text),
               _number(r.quantity), cell(r.unit), _money(r.unit_price), _money(amount), total)


def _money(value: Decimal | None) -> str:
    """Rupees with paisa, rounded as ``Decimal.quantize`` does (half to even)."""
    return "" if value is None else format(value, ".2f")


def stream(start: date, end: date, status: str = "") -> Iterator[str]:
    """The CSV as text chunks (about one per ``BATCH`` rows), for a streamed response or a file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for n, row in enumerate(rows(start, end, status), start=1):
        writer.writerow(row)
        if n % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
