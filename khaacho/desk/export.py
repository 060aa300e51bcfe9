"""The orders CSV: one row per order item, for the warehouse and the spreadsheet.

One Core query (plain rows, no ORM objects) joins the days' orders to their shops, lines and
products, selecting only the columns the CSV shows, in the CSV's order. It is read through a
server-side cursor in batches of ``BATCH`` rows, so a month's export streams in bounded memory, and
on PostgreSQL a cursor is planned for its first rows: it walks ``orders (created_at, id)`` for the
days and each order's lines by ``order_items (order_id)`` instead of hashing every line ever made.

On PostgreSQL the database writes the numbers and the instant as text itself: a day's export is
about 8,000 lines, and making then formatting some 90,000 ``Decimal`` and ``datetime`` objects in
Python was most of its time. It follows the same rules as the Python formatting used on SQLite
(the tests compare both backends' files byte for byte). Each batch is written in one call.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import islice

from sqlalchemy import Text, and_, case, cast, func, select

from khaacho.desk.filters import day_range
from khaacho.extensions import db
from khaacho.models import Order, OrderItem, Product, Shop

HEADER = ("order_id", "created_at", "status", "shop_phone", "shop_name", "sku", "product", "quantity",
          "unit", "unit_price", "amount", "order_total")
# A spreadsheet runs a cell starting with one of these as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BATCH = 2000

_orders, _shops, _items, _products = (model.__table__ for model in (Order, Shop, OrderItem, Product))
# The shop's phone, else the order's; the product's name, else the line's own text (no product matched).
_PHONE = func.coalesce(func.nullif(_shops.c.phone_number, ""), _orders.c.phone_number)
_PRODUCT = func.coalesce(_products.c.name, _items.c.raw_text)


def cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _number(value: Decimal | None) -> str:
    """A quantity without trailing zeros (``10``, ``2.5``)."""
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


def _paisa_half_even(amount):
    """SQL for ``amount`` rounded to paisa half to even, as ``Decimal.quantize`` rounds the order total
    (PostgreSQL's ``round`` takes a half away from zero: 0.625 is 0.62 here, 0.63 there)."""
    paisa = amount * 100
    tie_below_is_even = and_(func.mod(paisa, 1) == Decimal("0.5"), func.mod(func.floor(paisa), 2) == 0)
    return case((tie_below_is_even, func.round(func.floor(paisa) / 100, 2)), else_=func.round(amount, 2))


def _guarded(text):
    """SQL for ``cell``: text a spreadsheet shows as text, never runs as a formula."""
    return case((func.left(text, 1).in_(FORMULA_STARTS), "'" + text), else_=text)


def _as_text_in_postgresql() -> tuple:
    """The CSV's cells as PostgreSQL writes them: ``cell``, ``_when``, ``_number`` and ``_money`` in SQL."""
    return (cast(_orders.c.id, Text),
            func.to_char(func.timezone("UTC", _orders.c.created_at), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            _orders.c.status, _guarded(_PHONE), _guarded(_shops.c.profile_name), _guarded(_products.c.sku),
            _guarded(_PRODUCT), cast(func.trim_scale(_items.c.quantity), Text), _guarded(_items.c.unit),
            cast(_items.c.unit_price, Text),
            case((_products.c.sku.isnot(None), cast(_paisa_half_even(_items.c.quantity * _items.c.unit_price),
                                                    Text))),
            cast(_orders.c.total, Text))


def _as_values() -> tuple:
    return (_orders.c.id, _orders.c.created_at, _orders.c.status, _PHONE, _shops.c.profile_name,
            _products.c.sku, _PRODUCT, _items.c.quantity, _items.c.unit, _items.c.unit_price, _orders.c.total)


def _query(columns: tuple, start: date, end: date, status: str):
    """The days' lines in CSV order, with only the columns the CSV shows."""
    low, high = day_range(start, end)
    query = (
        select(*columns)
        .select_from(_orders.outerjoin(_shops, _shops.c.id == _orders.c.shop_id)
                     .outerjoin(_items, _items.c.order_id == _orders.c.id)
                     .outerjoin(_products, _products.c.id == _items.c.product_id))
        .where(_orders.c.created_at >= low, _orders.c.created_at < high)
        .order_by(_orders.c.created_at, _orders.c.id, _items.c.id)
        .execution_options(yield_per=BATCH)
    )
    return query.where(_orders.c.status == status) if status else query


def _formatted_by_postgresql(start: date, end: date, status: str) -> Iterator[tuple[str, ...]]:
    """Rows of text as they go in the file (``csv`` writes a NULL as an empty cell)."""
    return db.session.execute(_query(_as_text_in_postgresql(), start, end, status))


def _formatted_here(start: date, end: date, status: str) -> Iterator[tuple[str, ...]]:
    """Rows of values formatted in Python (SQLite, the embedded default)."""
    result = db.session.execute(_query(_as_values(), start, end, status))
    order_id, head, total = None, (), ""
    for oid, created, status_, phone, shop_name, sku, product, quantity, unit, price, order_total in result:
        if oid != order_id:  # an order's own cells are formatted once for all its lines
            order_id, total = oid, _money(order_total)
            head = (str(oid), _when(created), status_, cell(phone), cell(shop_name))
        amount = _money(quantity * price) if sku is not None and price is not None else ""
        yield (*head, cell(sku), cell(product), _number(quantity), cell(unit), _money(price), amount, total)


def rows(start: date, end: date, status: str = "") -> Iterator[tuple[str, ...]]:
    """The CSV rows (header first) of the orders made from ``start`` to ``end`` (inclusive, UTC)."""
    yield HEADER
    if db.engine.dialect.name == "postgresql":
        yield from _formatted_by_postgresql(start, end, status)
    else:
        yield from _formatted_here(start, end, status)


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
