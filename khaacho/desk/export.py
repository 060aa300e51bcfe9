"""The orders CSV: one row per order item, for the warehouse and the spreadsheet.

One Core query (plain rows, no ORM objects) joins the days' orders to their shops, lines and
products, selecting only the columns the CSV shows, in the CSV's order. It is read through a
server-side cursor in batches of ``BATCH`` rows, so a month's export streams in bounded memory, and
on PostgreSQL a cursor is planned for its first rows: it walks ``orders (created_at, id)`` for the
days and each order's lines by ``order_items (order_id)`` instead of hashing every line ever made.
Each order's own cells are formatted once for all its lines; each batch is written in one call.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import islice

from sqlalchemy import func, select

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


def _money(value: Decimal | None) -> str:
    """Rupees with paisa, rounded as ``Decimal.quantize`` does (half to even)."""
    return "" if value is None else format(value, ".2f")


def _when(moment: datetime) -> str:
    """``2026-12-05T14:03:09Z`` (``isoformat`` is several times cheaper than ``strftime``)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds")[:19] + "Z"


def _query(start: date, end: date, status: str):
    """The days' lines in CSV order, with only the columns the CSV shows (the shop's phone, else the
    order's; the product's name, else the line's own text when no product matched)."""
    low, high = day_range(start, end)
    orders, shops, items, products = (model.__table__ for model in (Order, Shop, OrderItem, Product))
    query = (
        select(orders.c.id, orders.c.created_at, orders.c.status,
               func.coalesce(func.nullif(shops.c.phone_number, ""), orders.c.phone_number),
               shops.c.profile_name, products.c.sku, func.coalesce(products.c.name, items.c.raw_text),
               items.c.quantity, items.c.unit, items.c.unit_price, orders.c.total)
        .select_from(orders.outerjoin(shops, shops.c.id == orders.c.shop_id)
                     .outerjoin(items, items.c.order_id == orders.c.id)
                     .outerjoin(products, products.c.id == items.c.product_id))
        .where(orders.c.created_at >= low, orders.c.created_at < high)
        .order_by(orders.c.created_at, orders.c.id, items.c.id)
    )
    return query.where(orders.c.status == status) if status else query


def rows(start: date, end: date, status: str = "") -> Iterator[tuple[str, ...]]:
    """The CSV rows (header first) of the orders made from ``start`` to ``end`` (inclusive, UTC)."""
    yield HEADER
    result = db.session.execute(_query(start, end, status).execution_options(yield_per=BATCH))
    order_id, head, total = None, (), ""
    for oid, created, status_, phone, shop_name, sku, product, quantity, unit, price, order_total in result:
        if oid != order_id:  # an order's own cells are formatted once for all its lines
            order_id, total = oid, _money(order_total)
            head = (str(oid), _when(created), status_, cell(phone), cell(shop_name))
        amount = _money(quantity * price) if sku is not None and price is not None else ""
        yield (*head, cell(sku), cell(product), _number(quantity), cell(unit), _money(price), amount, total)


def stream(start: date, end: date, status: str = "") -> Iterator[str]:
    """The CSV as text chunks (one per ``BATCH`` rows), for a streamed response or a file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    source = rows(start, end, status)
    while batch := list(islice(source, BATCH)):
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
