"""What needs a person: media orders, lines no product matched, clarifications that expired; alias learning.

An admin maps an unmatched text to a product: the text becomes one of the product's aliases, and
the waiting (``pending``) orders' lines that say it are read again, once, with the new alias.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import exists, func, select, update

from khaacho.extensions import db
from khaacho.models import MessageStatus, OpsAction, Order, OrderItem, OrderStatus, Product, WebhookMessage
from khaacho.orders.catalog import active_catalog
from khaacho.orders.matcher import match_key
from khaacho.orders.parser import parse_order
from khaacho.processing import kinds
from khaacho.processing.ordering import read_lines

LIMIT = 50
MAX_UNMATCHED_LINES = 500  # the newest; each is parsed again to find its words
ALIAS_ACTION = "alias"
MAX_ALIAS = 100
CENT = Decimal("0.01")


@dataclass(frozen=True)
class MediaItem:
    """A photo, voice note or document that waits for a person."""

    message: WebhookMessage
    reference: str | None
    caption: str | None


def media_messages() -> list[MediaItem]:
    """The newest media messages marked ``needs_attention``, with their media reference."""
    messages = db.session.scalars(
        select(WebhookMessage).where(WebhookMessage.status == MessageStatus.NEEDS_ATTENTION)
        .order_by(WebhookMessage.created_at.desc(), WebhookMessage.id.desc()).limit(LIMIT))
    found = []
    for m in messages:
        media = kinds.event_of(m.webhook_source, m.message_type, m.message_text, m.payload, m.message_id,
                               m.sender_id, m.phone_number).media
        found.append(MediaItem(m, media.reference if media else None, media.caption if media else None))
    return found


def product_words(raw_text: str) -> str:
    """The product part of an order line as written (``5 kg xyz dal`` → ``xyz dal``)."""
    parsed = parse_order(raw_text)
    return (parsed[0].name if parsed and parsed[0].name else raw_text).strip()[:MAX_ALIAS]


@dataclass
class Unmatched:
    """Waiting lines that say the same unmatched words, and the messages they came from."""

    words: str
    key: str
    item_ids: list[int] = field(default_factory=list)
    order_ids: set[int] = field(default_factory=set)
    message_ids: set[int] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)


def words_key(words: str) -> str:
    """What groups unmatched words: their phonetic match key (``Xyz  masala`` and ``xyz masaala`` are one)."""
    return match_key(words) or words.strip().lower()


def unmatched(words: str | None = None) -> list[Unmatched]:
    """Lines of waiting orders that no product matched, grouped by their words (most lines first).

    With ``words``, only the group those words belong to.
    """
    key = words_key(words) if words is not None else None
    rows = db.session.execute(
        select(OrderItem.id, OrderItem.raw_text, OrderItem.order_id,
               OrderItem.webhook_message_id, Order.webhook_message_id.label("order_message_id"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.product_id.is_(None), Order.status == OrderStatus.PENDING)
        .order_by(OrderItem.id.desc()).limit(MAX_UNMATCHED_LINES))
    groups: OrderedDict[str, Unmatched] = OrderedDict()
    for row in rows:
        written = product_words(row.raw_text)
        row_key = words_key(written)
        if key is not None and row_key != key:
            continue
        group = groups.setdefault(row_key, Unmatched(written, row_key))
        group.item_ids.append(row.id)
        group.order_ids.add(row.order_id)
        group.message_ids.add(row.webhook_message_id or row.order_message_id)
        if len(group.examples) < 3 and row.raw_text not in group.examples:
            group.examples.append(row.raw_text)
    return sorted(groups.values(), key=lambda g: -len(g.item_ids))


def expired_clarifications() -> list[Order]:
    """Orders that expired while a line still waited for the shop's answer, newest first."""
    waiting = exists().where(OrderItem.order_id == Order.id, OrderItem.product_id.is_(None))
    return list(db.session.scalars(
        select(Order).where(Order.status == OrderStatus.EXPIRED, waiting)
        .order_by(Order.updated_at.desc(), Order.id.desc()).limit(LIMIT)))


def active_products() -> list[Product]:
    """The products an unmatched text can be mapped to, by name."""
    return list(db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.name)))


@dataclass(frozen=True)
class Learned:
    """What mapping a text to a product did."""

    product: Product
    words: str
    lines: int
    orders: int
    messages: int


def _add_alias(product: Product, words: str) -> None:
    aliases = [a.strip() for a in (product.aliases or "").split("|") if a.strip()]
    if match_key(words) not in {match_key(a) for a in [*aliases, product.name]}:
        product.aliases = "|".join([*aliases, words])


def _retotal(order_ids: set[int]) -> None:
    """Recompute the totals of re-read orders; each re-read is an amendment (``version`` + 1)."""
    for order_id in order_ids:
        items = db.session.execute(select(OrderItem.quantity, OrderItem.unit_price).where(
            OrderItem.order_id == order_id, OrderItem.product_id.is_not(None),
            OrderItem.unit_price.is_not(None)))
        total = sum(((q * p).quantize(CENT) for q, p in items), Decimal("0"))
        db.session.execute(update(Order).where(Order.id == order_id)
                           .values(total=total, version=Order.version + 1)
                           .execution_options(synchronize_session=False))


def learn_alias(words: str, product_id: int, user_id: int | None) -> Learned | None:
    """Add the unmatched words as an alias of the product, then re-read the waiting lines that say them.

    A line is re-read by a conditional update on ``product_id IS NULL``, so a second mapping (or two
    admins at once) re-reads nothing twice. None when the product does not exist.
    """
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        return None
    groups = unmatched(words)
    words = groups[0].words if groups else words.strip()
    _add_alias(product, words)
    db.session.commit()
    catalog = active_catalog()
    read = 0
    orders: set[int] = set()
    messages: set[int] = set()
    item_ids = [item_id for group in groups for item_id in group.item_ids]
    for item in db.session.execute(
            select(OrderItem.id, OrderItem.raw_text, OrderItem.order_id,
                   func.coalesce(OrderItem.webhook_message_id, Order.webhook_message_id).label("message_id"))
            .join(Order, Order.id == OrderItem.order_id).where(OrderItem.id.in_(item_ids))):
        lines = read_lines(item.raw_text, catalog)
        if len(lines) != 1 or lines[0].product_id is None:
            continue
        line = lines[0]
        changed = db.session.execute(
            update(OrderItem).where(OrderItem.id == item.id, OrderItem.product_id.is_(None))
            .values(product_id=line.product_id, unit=line.unit, unit_price=line.unit_price,
                    quantity=Decimal(str(round(line.quantity, 3))), candidates=None)
            .execution_options(synchronize_session=False)).rowcount
        if changed:
            read += 1
            orders.add(item.order_id)
            messages.add(item.message_id)
    _retotal(orders)
    detail = {"words": words, "product": product.sku, "lines": read, "orders": sorted(orders)}
    db.session.add(OpsAction(user_id=user_id, action=ALIAS_ACTION,
                             detail=json.dumps(detail, ensure_ascii=False)))
    db.session.commit()
    return Learned(product, words, read, len(orders), len(messages))
