"""Pending orders made and changed by a shop's messages, priced from the catalog.

Nothing here commits: each function rides in the transaction of the message being processed,
which also holds the shop's row lock, so a shop's orders change one message at a time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import (
    Insert,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    union_all,
    update,
)

from khaacho import statements
from khaacho.events import CartItem
from khaacho.extensions import db
from khaacho.models import Order, OrderItem, OrderStatus, Product, utcnow
from khaacho.orders.matcher import MATCHED, Catalog, OrderLine, convert, read_order
from khaacho.processing.prompts import OrderView, PromptLine
from khaacho.replies import compose

CENT = Decimal("0.01")
# A Meta list holds 10 rows: the candidates and "none of these".
MAX_CHOICES = 9

_orders, _items_table, _products = Order.__table__, OrderItem.__table__, Product.__table__
ADD_ORDER = insert(_orders).returning(_orders.c.id)
_ORDER_COLUMNS = ("webhook_message_id", "phone_number", "shop_id", "status", "version", "language",
                  "total", "created_at", "updated_at")
_ITEM_COLUMNS = ("raw_text", "product_id", "quantity", "unit", "unit_price", "webhook_message_id",
                 "candidates")


class NewOrder(NamedTuple):
    """What a text made: the order's id (None when no line was usable), its lines, the lines left out."""

    order_id: int | None
    lines: list[PromptLine]
    left_out: list[str]


def read_lines(text: str | None, catalog: Catalog) -> list[OrderLine]:
    """The order lines in a message, matched against the catalog."""
    return read_order(text, catalog) if text and text.strip() else []


def _items(lines: list[OrderLine], message_id: int) -> tuple[list[dict], list[str]]:
    """Rows for the lines that matched or can be asked about; the texts of the others (left out)."""
    items, left_out = [], []
    for line in lines:
        quantity = Decimal(str(round(line.quantity, 3)))
        if line.status == MATCHED and line.unit_price is not None:
            items.append({"raw_text": line.text, "product_id": line.product_id, "quantity": quantity,
                          "unit": line.unit, "unit_price": line.unit_price, "webhook_message_id": message_id,
                          "candidates": None})
        elif line.status != MATCHED and line.candidates:
            items.append({"raw_text": line.text, "product_id": None, "quantity": quantity, "unit": line.unit,
                          "unit_price": None, "webhook_message_id": message_id,
                          "candidates": [p.id for p in line.candidates[:MAX_CHOICES]]})
        else:
            left_out.append(line.text)
    return items, left_out


def create_order(message_id: int, customer: str, shop_id: int | None, lines: list[OrderLine],
                 language: str) -> NewOrder:
    """Insert a pending order for the lines; with its lines as stored, so the prompt need not read them."""
    items, left_out = _items(lines, message_id)
    if not items:
        return NewOrder(None, [], left_out)
    order_id, item_ids = _insert(message_id, customer, shop_id, items, language)
    names = _names(lines)
    stored = [_stored(item_id, item, names) for item_id, item in zip(item_ids, items, strict=True)]
    return NewOrder(order_id, _prompt_lines(stored), left_out)


def _names(lines: list[OrderLine]) -> dict[int, str]:
    """The matched products' names, by product id."""
    return {line.product_id: line.name for line in lines if line.product_id is not None}


def _stored(item_id: int, item: dict, names: dict[int, str]) -> dict:
    """An item as stored, with its id and its product's name (None while the shop has to choose)."""
    return dict(item, id=item_id, name=names.get(item["product_id"]))


def _prompt_lines(stored: list[dict]) -> list[PromptLine]:
    return [PromptLine(*(line[name] for name in PromptLine._fields)) for line in stored]


def insert_order(message_id: int, customer: str, shop_id: int | None, items: list[dict],
                 language: str) -> int:
    """Insert a pending order with these items; its id."""
    return _insert(message_id, customer, shop_id, items, language)[0]


def _insert(message_id: int, customer: str, shop_id: int | None, items: list[dict],
            language: str) -> tuple[int, list[int]]:
    """Insert a pending order with these items; its id and the items' ids, in order.

    On PostgreSQL the order and its items are one statement (one round trip instead of two).
    """
    now = utcnow()
    order = {"webhook_message_id": message_id, "phone_number": customer, "shop_id": shop_id,
             "status": OrderStatus.PENDING.value, "version": 1, "language": language, "total": _total(items),
             "created_at": now, "updated_at": now}
    if db.engine.dialect.name == "postgresql":
        params = {**{f"order_{name}": value for name, value in order.items()}, **_item_params(items)}
        rows = statements.fetch(_order_with_items(len(items)), params)
        # The items' ids come from their sequence in the order they were inserted, that of the items.
        return rows[0].order_id, sorted(row.id for row in rows)
    order_id = db.session.execute(ADD_ORDER, order).scalar_one()
    return order_id, _add_items(order_id, items)


@functools.lru_cache(maxsize=32)
def _order_with_items(count: int) -> Insert:
    """``count`` items inserted from a select over the new order's CTE, in the items' order."""
    new_order = (insert(_orders).values({name: bindparam(f"order_{name}") for name in _ORDER_COLUMNS})
                 .returning(_orders.c.id).cte("new_order"))
    rows = union_all(*(
        select(literal_column(str(i)).label("position"),
               *(cast(bindparam(f"{name}_{i}", type_=_items_table.c[name].type), _items_table.c[name].type)
                 .label(name) for name in _ITEM_COLUMNS))
        for i in range(count))).subquery("item_rows")
    picked = (select(new_order.c.id, *(rows.c[name] for name in _ITEM_COLUMNS))
              .select_from(new_order.join(rows, true())).order_by(rows.c.position))
    return (insert(_items_table).from_select(["order_id", *_ITEM_COLUMNS], picked)
            .returning(_items_table.c.order_id, _items_table.c.id))


def _add_items(order_id: int, items: list[dict]) -> list[int]:
    """Add the items to an order in one statement; their ids, in the items' order."""
    params = {"order_id": order_id, **_item_params(items)}
    # The ids come from the table's sequence in the order of the VALUES rows, that of the items.
    return sorted(row.id for row in statements.fetch(_items_insert(len(items)), params))


def _item_params(items: list[dict]) -> dict:
    """The items' values as the statements below bind them: ``quantity_0``, ``quantity_1``…"""
    return {f"{name}_{i}": item[name] for i, item in enumerate(items) for name in _ITEM_COLUMNS}


@functools.lru_cache(maxsize=32)
def _items_insert(count: int) -> Insert:
    """``count`` items of one order as one multi-row ``INSERT``, returning their ids."""
    rows = [{"order_id": bindparam("order_id"),
             **{name: bindparam(f"{name}_{i}", type_=_items_table.c[name].type) for name in _ITEM_COLUMNS}}
            for i in range(count)]
    return insert(_items_table).values(rows).returning(_items_table.c.id)


def _total(items: list[dict]) -> Decimal:
    return sum(((Decimal(item["quantity"]) * item["unit_price"]).quantize(CENT) for item in items
                if item["product_id"] is not None and item["unit_price"] is not None), Decimal("0"))


# An order's lines with their products' names, in order: what an amendment starts from.
_line = _items_table.c
_LINES = (select(_line.id, _line.raw_text, _line.quantity, _line.unit, _line.unit_price, _line.candidates,
                 _products.c.name, _line.product_id)
          .select_from(_items_table.outerjoin(_products, _products.c.id == _line.product_id))
          .where(_line.order_id == bindparam("order_id")).order_by(_line.id))
# A line of the order taking the new quantity of its product (the line's text, price, message with it).
_SET_LINE = (update(_items_table).where(_line.id == bindparam("_item_id"))
             .values({name: bindparam(f"{name}_0", type_=_line[name].type) for name in _ITEM_COLUMNS}))
# An amended order's new total and version (older buttons stop confirming).
_BUMP = (update(_orders).where(_orders.c.id == bindparam("_order_id"))
         .values(version=_orders.c.version + 1, total=bindparam("_total"), updated_at=bindparam("_now"))
         .returning(_orders.c.version, _orders.c.language))


def refresh(order_id: int, amended: bool) -> None:
    """Recompute the total; an amendment also moves the version on (older buttons stop confirming)."""
    rows = db.session.execute(select(_line.product_id, _line.quantity, _line.unit_price)
                              .where(_line.order_id == order_id))
    values = {"total": _total([row._asdict() for row in rows]), "updated_at": utcnow()}
    if amended:
        values["version"] = _orders.c.version + 1
    db.session.execute(update(_orders).where(_orders.c.id == order_id).values(**values))


class Amended(NamedTuple):
    """The amended order as its prompt shows it (None when nothing changed) and the lines left out."""

    view: OrderView | None
    left_out: list[str]


def amend(order_id: int, lines: list[OrderLine], message_id: int, replace: bool = False) -> Amended:
    """Add the lines to the order (a product already in it takes the new quantity).

    With ``replace`` the lines the message added before go first (the message was edited). The
    order's lines are read once, before the change; the result is worked out from them and the
    new lines, so neither the total nor the prompt reads them back.
    """
    items, left_out = _items(lines, message_id)
    if replace:
        db.session.execute(delete(OrderItem).where(OrderItem.order_id == order_id,
                                                   OrderItem.webhook_message_id == message_id)
                           .execution_options(synchronize_session=False))
    elif not items:
        return Amended(None, left_out)
    current = {row.id: row._asdict() for row in statements.fetch(_LINES, {"order_id": order_id})}
    by_product = {line["product_id"]: item_id for item_id, line in current.items()
                  if line["product_id"] is not None}
    names = _names(lines)
    added = []
    for item in items:
        item_id = by_product.get(item["product_id"])
        if item_id is None:
            added.append(item)
            continue
        statements.fetch(_SET_LINE, {"_item_id": item_id, **_item_params([item])})
        current[item_id] = _stored(item_id, item, names)
    if added:  # one statement for all the new lines
        item_ids = _add_items(order_id, added)
        current.update((item_id, _stored(item_id, item, names))
                       for item_id, item in zip(item_ids, added, strict=True))
    stored = [current[item_id] for item_id in sorted(current)]
    version, language = statements.first(_BUMP, {"_order_id": order_id, "_total": _total(stored),
                                                  "_now": utcnow()})
    return Amended(OrderView(version, language, _prompt_lines(stored)), left_out)


def remove_lines_of(order_id: int, message_id: int) -> int:
    """Take out the lines a message added (its deletion or edit); how many there were."""
    removed = db.session.execute(delete(OrderItem).where(OrderItem.order_id == order_id,
                                                         OrderItem.webhook_message_id == message_id)
                                 .execution_options(synchronize_session=False)).rowcount
    if removed:
        refresh(order_id, amended=True)
    return removed


def item_count(order_id: int) -> int:
    """How many lines the order has."""
    return db.session.scalar(select(func.count()).select_from(OrderItem)
                             .where(OrderItem.order_id == order_id))


def resolve(order_id: int, item_id: int, product_id: int | None) -> bool:
    """The shop's pick for an open line (None: none of these, the line goes); False if it is not open."""
    item = db.session.execute(select(OrderItem.quantity, OrderItem.unit, OrderItem.candidates).where(
        OrderItem.id == item_id, OrderItem.order_id == order_id, OrderItem.product_id.is_(None))
    ).one_or_none()
    if item is None or (product_id is not None and product_id not in (item.candidates or [])):
        return False
    if product_id is None:
        db.session.execute(delete(OrderItem).where(OrderItem.id == item_id)
                           .execution_options(synchronize_session=False))
    else:
        product = db.session.execute(select(Product.unit, Product.price)
                                     .where(Product.id == product_id)).one()
        quantity, unit = convert(float(item.quantity), item.unit, product.unit)
        db.session.execute(update(OrderItem).where(OrderItem.id == item_id).values(
            product_id=product_id, quantity=Decimal(str(round(quantity, 3))), unit=product.unit,
            unit_price=product.price, candidates=None).execution_options(synchronize_session=False))
    refresh(order_id, amended=False)
    return True


def copy_order(source_id: int, message_id: int, customer: str, shop_id: int | None,
               language: str) -> int | None:
    """A pending copy of an order at today's prices (products no longer sold are left out); its id."""
    rows = db.session.execute(
        select(OrderItem.raw_text, OrderItem.product_id, OrderItem.quantity, Product.unit, Product.price)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id == source_id, Product.active.is_(True)).order_by(OrderItem.id))
    items = [{"raw_text": row.raw_text, "product_id": row.product_id, "quantity": row.quantity,
              "unit": row.unit, "unit_price": row.price, "webhook_message_id": message_id,
              "candidates": None} for row in rows]
    return insert_order(message_id, customer, shop_id, items, language) if items else None


@dataclass(frozen=True)
class CartResult:
    """A cart read against the catalog: the order's items, SKUs we do not sell, prices that changed."""

    items: list[dict]
    unknown: list[str]
    repriced: list[compose.Repriced]


def read_cart(cart: tuple[CartItem, ...], message_id: int) -> CartResult:
    """The cart's lines at catalog prices; SKUs not in the active catalog are set aside."""
    skus = [item.sku for item in cart]
    products = {p.sku: p for p in db.session.execute(
        select(Product.id, Product.sku, Product.name, Product.unit, Product.price)
        .where(Product.sku.in_(skus), Product.active.is_(True)))}
    items, unknown, repriced = [], [], []
    for line in cart:
        product = products.get(line.sku)
        if product is None:
            unknown.append(line.sku)
            continue
        items.append({"raw_text": f"{line.sku} × {compose.number(line.quantity)}", "product_id": product.id,
                      "quantity": line.quantity.quantize(Decimal("0.001")), "unit": product.unit,
                      "unit_price": product.price, "webhook_message_id": message_id, "candidates": None})
        if line.item_price is not None and line.item_price.quantize(CENT) != product.price:
            repriced.append(compose.Repriced(product.name, line.item_price, product.price))
    return CartResult(items, unknown, repriced)
