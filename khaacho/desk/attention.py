"""What needs a person: media orders, lines no product matched, clarifications that expired; alias learning.

An admin maps an unmatched text to a product: the text becomes one of the product's aliases, and
the waiting (``pending``) orders' lines that say it are read again, once, with the new alias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import exists, select, update

from khaacho.extensions import db
from khaacho.models import MessageStatus, OpsAction, Order, OrderItem, OrderStatus, Product, WebhookMessage
from khaacho.orders.catalog import active_catalog
from khaacho.orders.matcher import Catalog, match_key
from khaacho.orders.parser import parse_order
from khaacho.processing import kinds, ordering
from khaacho.processing.ordering import read_lines

LIMIT = 50
# Waiting orders are read again from their messages: the newest ones (pending orders expire anyway).
MAX_WAITING_ORDERS = 40
ALIAS_ACTION = "alias"
MAX_ALIAS = 100


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


def words_key(words: str) -> str:
    """What groups unmatched words: their phonetic match key (``Xyz  masala`` and ``xyz masaala`` are one)."""
    return match_key(words) or words.strip().lower()


@dataclass(frozen=True)
class Line:
    """One line of a waiting order's message that no product matched: kept (``item_id``) or left out."""

    order_id: int
    message_id: int
    text: str
    item_id: int | None


def _waiting_lines() -> list[Line]:
    """The unmatched lines of the newest waiting orders, read again from their messages.

    A line that fits no product well is left out of the order (and only answered to the shop), so
    the messages are read again; a line still waiting for the shop's pick is a stored item.
    """
    orders = {row.id: row.webhook_message_id for row in db.session.execute(
        select(Order.id, Order.webhook_message_id).where(Order.status == OrderStatus.PENDING)
        .order_by(Order.created_at.desc(), Order.id.desc()).limit(MAX_WAITING_ORDERS))}
    if not orders:
        return []
    pairs = {(order_id, message_id) for order_id, message_id in orders.items()}
    open_items: dict[tuple[int, int, str], int] = {}
    for row in db.session.execute(
            select(OrderItem.id, OrderItem.order_id, OrderItem.webhook_message_id, OrderItem.raw_text,
                   OrderItem.product_id).where(OrderItem.order_id.in_(orders))):
        message_id = row.webhook_message_id or orders[row.order_id]
        pairs.add((row.order_id, message_id))
        if row.product_id is None:
            open_items[(row.order_id, message_id, row.raw_text)] = row.id
    texts = {row.id: row.message_text for row in db.session.execute(
        select(WebhookMessage.id, WebhookMessage.message_text)
        .where(WebhookMessage.id.in_({message_id for _, message_id in pairs})))}
    catalog = active_catalog()
    lines = []
    for order_id, message_id in sorted(pairs, reverse=True):
        for line in read_lines(texts.get(message_id), catalog):
            if line.product_id is None:
                item_id = open_items.pop((order_id, message_id, line.text), None)
                lines.append(Line(order_id, message_id, line.text, item_id))
    lines += [Line(order_id, message_id, text, item_id)
              for (order_id, message_id, text), item_id in open_items.items()]
    return lines


@dataclass
class Unmatched:
    """Waiting lines that say the same unmatched words, and the messages they came from."""

    words: str
    key: str
    lines: list[Line] = field(default_factory=list)

    @property
    def order_ids(self) -> set[int]:
        """The waiting orders these lines belong to."""
        return {line.order_id for line in self.lines}

    @property
    def message_ids(self) -> set[int]:
        """The messages these lines were written in."""
        return {line.message_id for line in self.lines}

    @property
    def examples(self) -> list[str]:
        """Up to three of the lines as written."""
        return list(dict.fromkeys(line.text for line in self.lines))[:3]


def unmatched(words: str | None = None) -> list[Unmatched]:
    """Lines of waiting orders that no product matched, grouped by their words (most lines first).

    With ``words``, only the group those words belong to.
    """
    key = words_key(words) if words is not None else None
    groups: dict[str, Unmatched] = {}
    for line in _waiting_lines():
        written = product_words(line.text)
        line_key = words_key(written)
        if key is None or line_key == key:
            groups.setdefault(line_key, Unmatched(written, line_key)).lines.append(line)
    return sorted(groups.values(), key=lambda g: -len(g.lines))


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


def _reread(line: Line, catalog: Catalog) -> bool:
    """Read one waiting line again into its order (still pending); whether it now has its product."""
    found = read_lines(line.text, catalog)
    if len(found) != 1 or found[0].product_id is None or found[0].unit_price is None:
        return False
    still_waiting = db.session.scalar(select(Order.id).where(
        Order.id == line.order_id, Order.status == OrderStatus.PENDING).with_for_update())
    if still_waiting is None:
        return False
    if line.item_id is None:
        return not ordering.amend(line.order_id, found, line.message_id).left_out
    match = found[0]
    changed = db.session.execute(
        update(OrderItem).where(OrderItem.id == line.item_id, OrderItem.product_id.is_(None))
        .values(product_id=match.product_id, unit=match.unit, unit_price=match.unit_price,
                quantity=Decimal(str(round(match.quantity, 3))), candidates=None)
        .execution_options(synchronize_session=False)).rowcount
    if changed:
        ordering.refresh(line.order_id, amended=True)
    return bool(changed)


def learn_alias(words: str, product_id: int, user_id: int | None) -> Learned | None:
    """Add the unmatched words as an alias of the product, then re-read the waiting lines that say them.

    The lines are found before the alias exists; once it does they match, so a second mapping
    (or a second admin) finds none and re-reads nothing. None when the product does not exist.
    """
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        return None
    groups = unmatched(words)
    words = groups[0].words if groups else words.strip()
    _add_alias(product, words)
    db.session.commit()
    catalog = active_catalog()
    read = [line for group in groups for line in group.lines if _reread(line, catalog)]
    orders = sorted({line.order_id for line in read})
    detail = {"words": words, "product": product.sku, "lines": len(read), "orders": orders}
    db.session.add(OpsAction(user_id=user_id, action=ALIAS_ACTION,
                             detail=json.dumps(detail, ensure_ascii=False)))
    db.session.commit()
    return Learned(product, words, len(read), len(orders), len({line.message_id for line in read}))
