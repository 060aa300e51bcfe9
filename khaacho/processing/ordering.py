"""Orders made from messages: at most one per message, priced from the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import insert, select

from khaacho.events import CartItem
from khaacho.extensions import db
from khaacho.models import CLARIFICATION, CONFIRMATION, HELP, Order, OrderItem, OrderStatus, Product
from khaacho.orders.matcher import Catalog, OrderLine, read_order
from khaacho.replies import compose

CENT = Decimal("0.01")
ITEM_FIELDS = ("raw_text", "product_id", "quantity", "unit", "unit_price")

ADD_ORDER = insert(Order.__table__).returning(Order.__table__.c.id)
ADD_ITEMS = insert(OrderItem.__table__)

_products: tuple[Catalog, dict[int, tuple[str, str]]] | None = None


def read_lines(text: str | None, catalog: Catalog) -> list[OrderLine]:
    """The order lines in a message, matched against the catalog."""
    return read_order(text, catalog) if text and text.strip() else []


def _product_names(catalog: Catalog) -> dict[int, tuple[str, str]]:
    """Name and unit of every product, reloaded whenever ``active_catalog`` rebuilds the catalog."""
    global _products
    if _products is None or _products[0] is not catalog:
        rows = db.session.execute(select(Product.id, Product.name, Product.unit))
        _products = (catalog, {row.id: (row.name, row.unit) for row in rows})
    return _products[1]


def create_order(message_id: int, customer: str, shop_id: int | None,
                 lines: list[OrderLine]) -> tuple[int | None, list[dict]]:
    """Insert (not commit) the order for the lines; returns its id and items, or None when none matched.

    A line that fits several products (or none well) is stored without a product, not guessed.
    """
    if not any(line.product_id is not None for line in lines):
        return None, []
    items = [{"raw_text": line.text, "product_id": line.product_id, "unit": line.unit,
              "quantity": Decimal(str(round(line.quantity, 3))), "unit_price": line.unit_price}
             for line in lines]
    return _insert(message_id, customer, shop_id, items), items


def _insert(message_id: int, customer: str, shop_id: int | None, items: list[dict]) -> int:
    total = sum(((item["quantity"] * item["unit_price"]).quantize(CENT) for item in items
                 if item["product_id"] is not None and item["unit_price"] is not None), Decimal("0"))
    order_id = db.session.execute(ADD_ORDER, {"webhook_message_id": message_id, "phone_number": customer,
                                              "shop_id": shop_id, "status": OrderStatus.PENDING.value,
                                              "total": total}).scalar_one()
    db.session.execute(ADD_ITEMS, [dict(item, order_id=order_id) for item in items])
    return order_id


@dataclass(frozen=True)
class CartResult:
    """A cart read against the catalog: the order's items, SKUs we do not sell, prices that changed."""

    items: list[dict]
    unknown: list[str]
    repriced: list[compose.Repriced]


def read_cart(cart: tuple[CartItem, ...]) -> CartResult:
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
                      "unit_price": product.price})
        if line.item_price is not None and line.item_price.quantize(CENT) != product.price:
            repriced.append(compose.Repriced(product.name, line.item_price, product.price))
    return CartResult(items, unknown, repriced)


def create_cart_order(message_id: int, customer: str, shop_id: int | None,
                      cart: CartResult) -> int | None:
    """Insert (not commit) the order of a cart's known products; None when it has none."""
    return _insert(message_id, customer, shop_id, cart.items) if cart.items else None


def order_items(order_id: int) -> list[dict]:
    """The stored items of an order, in the shape ``create_order`` returns them."""
    columns = [getattr(OrderItem, field) for field in ITEM_FIELDS]
    rows = db.session.execute(select(*columns).where(OrderItem.order_id == order_id).order_by(OrderItem.id))
    return [dict(zip(ITEM_FIELDS, row, strict=True)) for row in rows]


def _choices(line: OrderLine) -> tuple[str, ...]:
    """Names of the products an unmatched line may mean."""
    return tuple(product.name for product in line.candidates)


def _asked_choices(raw_text: str, catalog: Catalog) -> tuple[str, ...]:
    """The candidates of a stored unmatched item, read again from its text."""
    lines = read_lines(raw_text, catalog)
    return _choices(lines[0]) if lines else ()


def reply_lines(items: list[dict], catalog: Catalog) -> list[compose.ReplyLine]:
    """Order items as reply lines, with product names, the units they are sold in, or what they may mean."""
    products = _product_names(catalog)
    lines = []
    for item in items:
        name, sold_by = products.get(item["product_id"], (None, None))
        price = item["unit_price"] if name is not None else None
        choices = _asked_choices(item["raw_text"], catalog) if name is None else ()
        lines.append(compose.ReplyLine(item["raw_text"], name, Decimal(item["quantity"]), item["unit"], price,
                                       sold_by if price is None else None, choices))
    return lines


def reply_body(order_id: int | None, items: list[dict], lines: list[OrderLine],
               catalog: Catalog) -> tuple[str, str]:
    """The reply kind and text: the order's confirmation, the not-found list, or the how-to-order help."""
    if order_id is not None:
        return CONFIRMATION, compose.confirmation(order_id, reply_lines(items, catalog))
    if lines:
        return CLARIFICATION, compose.not_found([line.text for line in lines],
                                                [_choices(line) for line in lines])
    return HELP, compose.help_text()


def cart_reply_body(order_id: int | None, cart: CartResult, catalog: Catalog) -> tuple[str, str]:
    """The reply kind and text for a cart: its confirmation with what was set aside, or what we lack."""
    if order_id is None:
        return CLARIFICATION, compose.cart_not_found(cart.unknown)
    body = compose.confirmation(order_id, reply_lines(cart.items, catalog))
    return CONFIRMATION, body + compose.cart_notes(cart.unknown, cart.repriced)
