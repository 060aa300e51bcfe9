"""The order as a conversation: what a shop's text, tap, edit or deletion does to its orders.

Every function runs inside the message's transaction after the shop's row is locked (by its
upsert, :func:`khaacho.processing.shops.upsert`), so two consumers never act for one shop at
once; the state (pending order, version, open questions) is in the database, never in memory.
Each returns the reply to send, or a note for ops when there is nothing to say.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, select, update

from khaacho import statements
from khaacho.events import InboundMessage
from khaacho.extensions import db
from khaacho.models import (
    CLARIFICATION,
    HELP,
    PRICE,
    STATUS_UPDATE,
    OpsAction,
    Order,
    OrderItem,
    OrderStatus,
    OutboundMessage,
    Product,
    WebhookMessage,
    one_of,
    utcnow,
)
from khaacho.orders import lifecycle
from khaacho.orders.catalog import active_catalog
from khaacho.processing import answers, ordering
from khaacho.processing.prompts import ORDER_AGAIN, OrderView, Reply, open_question, prompt, read_tap
from khaacho.replies import compose, dialogue, notices

SHIPPED = (OrderStatus.CONFIRMED, OrderStatus.DISPATCHED, OrderStatus.DELIVERED)
MAX_PRICES = 10


@dataclass(frozen=True)
class Turn:
    """The message being handled: its row id, provider, sender key, shop and language."""

    message_id: int
    provider: str
    customer: str
    shop_id: int | None
    language: str
    retry: bool = False  # an earlier attempt ran: what it committed must be found, not made again
    catalog_version: tuple | None = None  # as the claim read it; None: read when the catalog is needed


_orders = Order.__table__
_ORDER = (select(_orders.c.id, _orders.c.status, _orders.c.version, _orders.c.language,
                 _orders.c.webhook_message_id)
          .where(_orders.c.id == bindparam("order_id"), _orders.c.shop_id == bindparam("shop_id"))
          .with_for_update())


def _order(order_id: int, shop_id: int | None):
    """The shop's order (status, version, language), locked; None when it is not this shop's."""
    return statements.first(_ORDER, {"order_id": order_id, "shop_id": shop_id})


def _latest(shop_id: int | None, *statuses: str):
    """The shop's newest order in one of the statuses, locked."""
    return statements.first(_latest_statement(statuses), {"shop_id": shop_id})


@functools.cache
def _latest_statement(statuses: tuple[str, ...]):
    columns = (_orders.c.id, _orders.c.status, _orders.c.version, _orders.c.language, _orders.c.updated_at)
    return (select(*columns)
            .where(_orders.c.shop_id == bindparam("shop_id"), one_of(_orders.c.status, statuses))
            .order_by(_orders.c.id.desc()).limit(1).with_for_update())


def _announce(order_id: int, status: str, language: str, key: str, **values) -> Reply:
    """The answer that an order is now confirmed or cancelled: once per order and status."""
    return Reply(STATUS_UPDATE, dialogue.say(language, key, n=order_id, **values), order_id=order_id,
                 dedup_key=notices.dedup_key(order_id, status))


def _info(turn: Turn, key: str) -> Reply:
    return Reply(HELP, dialogue.say(turn.language, key))


def confirm(turn: Turn, order_id: int, version: int) -> Reply | str:
    """Confirm a pending order whose lines are all clear; otherwise ask about the next one."""
    confirmed = lifecycle.confirm(order_id, turn.shop_id, version)
    return _not_confirmed(turn, order_id) if confirmed is None else _confirmed(order_id, confirmed)


def _not_confirmed(turn: Turn, order_id: int) -> Reply | str:
    """After a confirmation that did not take: the line the shop still has to choose, or a note."""
    if open_question(order_id) is not None:
        return prompt(order_id, turn.provider)
    return f"order #{order_id} was not pending at this version; not confirmed again"


def _confirmed(order_id: int, moved) -> Reply:
    """The answer that the order is confirmed, with its total, in its language."""
    return _announce(order_id, "confirmed", moved.language, "confirmed", total=compose.money(moved.total))


def cancel(turn: Turn, order_id: int, status: str, language: str) -> Reply | str:
    """Cancel a pending order, or a confirmed one not yet dispatched."""
    if not lifecycle.allowed(status, OrderStatus.CANCELLED, lifecycle.SHOP):
        return Reply(HELP, dialogue.say(language, "too_late", n=order_id,
                                        status=dialogue.status_word(language, status)), order_id=order_id)
    if not lifecycle.transition(order_id, status, OrderStatus.CANCELLED, lifecycle.SHOP):
        return f"order #{order_id} changed meanwhile; not cancelled"
    return _announce(order_id, "cancelled", language, "cancelled")


def ask_change(order_id: int, language: str) -> Reply:
    """Ask what to change; the order's clock restarts, so the next text amends it."""
    db.session.execute(update(Order).where(Order.id == order_id).values(updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    return Reply(HELP, dialogue.say(language, "change", n=order_id), order_id=order_id)


def on_tap(turn: Turn, event: InboundMessage) -> Reply | str:
    """A tap on a button or list row, acted on by its id."""
    again = ORDER_AGAIN.match(event.tapped_id or "")
    if again is not None:
        return repeat(turn, int(again["order"]))
    tap = read_tap(event.tapped_id)
    if tap is None:
        return f"tap {event.tapped_id!r}: not one of our buttons; nothing to do"
    if tap.action == "confirm":  # the usual tap: confirmed in one statement when nothing stands in the way
        confirmed = lifecycle.confirm(tap.order_id, turn.shop_id, tap.version)
        if confirmed is not None:
            return _confirmed(tap.order_id, confirmed)
    order = _order(tap.order_id, turn.shop_id)
    if order is None:
        return f"tap {event.tapped_id!r}: no such order of this shop"
    if order.status == OrderStatus.CONFIRMED and tap.action == "cancel":
        return cancel(turn, order.id, order.status, order.language)
    if order.status != OrderStatus.PENDING:
        return f"tap {event.tapped_id!r}: order #{order.id} is {order.status}; nothing to do"
    if tap.version != order.version:
        return prompt(order.id, turn.provider, out_of_date=True)
    if tap.action == "confirm":
        # Pending at the tapped version and this shop's (its row locked), yet not confirmed above:
        # a line still waits for the shop's choice. Trying the same update again would change nothing.
        return _not_confirmed(turn, order.id)
    if tap.action == "change":
        return ask_change(order.id, order.language)
    if tap.action == "cancel":
        return cancel(turn, order.id, order.status, order.language)
    return pick(turn, order, tap.item_id, tap.product_id)


def pick(turn: Turn, order, item_id: int, product_id: int | None) -> Reply | str:
    """Resolve (or drop) a line; then the next question or the confirmation."""
    if not ordering.resolve(order.id, item_id, product_id):
        return prompt(order.id, turn.provider)
    if ordering.item_count(order.id) == 0:
        lifecycle.transition(order.id, OrderStatus.PENDING, OrderStatus.CANCELLED, lifecycle.SHOP)
        return _announce(order.id, "cancelled", order.language, "nothing_left")
    return prompt(order.id, turn.provider)


def on_text(turn: Turn, event: InboundMessage) -> Reply | str:
    """A text: a choice, a typed answer, a repeat, a price question, or order lines."""
    text = event.text
    pending = _latest(turn.shop_id, OrderStatus.PENDING)
    number = answers.choice_number(text)
    if pending is not None and number is not None:
        question = open_question(pending.id)
        if question is not None:
            item_id, _, candidates = question
            if number == 0 or number <= len(candidates):
                return pick(turn, pending, item_id, candidates[number - 1] if number else None)
    answer = answers.typed_answer(text)
    if answer is not None:
        return _typed(turn, answer, pending)
    if answers.is_repeat(text):
        return repeat(turn, None)
    subjects = answers.price_subjects(text)
    if subjects is not None:
        return price_answer(turn, subjects)
    lines = ordering.read_lines(text, active_catalog(turn.catalog_version))
    if not lines:
        return Reply(HELP, dialogue.HELP if turn.language == dialogue.NE else compose.help_text())
    if turn.retry:
        made = db.session.scalar(select(Order.id).where(Order.webhook_message_id == turn.message_id))
        if made is not None:
            return prompt(made, turn.provider)
    target = _amendable(turn, event, pending)
    if target is not None:
        amended = ordering.amend(target, lines, turn.message_id)
        return prompt(target, turn.provider, tuple(amended.left_out), known=amended.view)
    made = ordering.create_order(turn.message_id, turn.customer, turn.shop_id, lines, turn.language)
    if made.order_id is None:
        return Reply(CLARIFICATION, compose.not_found(made.left_out))
    return prompt(made.order_id, turn.provider, tuple(made.left_out),
                  known=OrderView(1, turn.language, made.lines))


def _typed(turn: Turn, answer: str, pending) -> Reply | str:
    if answer == answers.CANCEL:
        order = pending or _latest(turn.shop_id, OrderStatus.CONFIRMED, OrderStatus.DISPATCHED)
        if order is None:
            return _info(turn, "nothing_to_cancel")
        return cancel(turn, order.id, order.status, order.language)
    if pending is None:
        if answer == answers.CONFIRM:
            return "typed confirmation with no pending order; nothing to do"
        return _info(turn, "nothing_pending")
    if answer == answers.CONFIRM:
        return confirm(turn, pending.id, pending.version)
    return ask_change(pending.id, pending.language)


def _amendable(turn: Turn, event: InboundMessage, pending) -> int | None:
    """The pending order this text amends: the one whose prompt it replies to, or a recent one."""
    if event.context_id:
        replied = db.session.scalar(
            select(Order.id).join(OutboundMessage, OutboundMessage.order_id == Order.id)
            .where(OutboundMessage.provider_message_id == event.context_id, Order.shop_id == turn.shop_id,
                   Order.status == OrderStatus.PENDING).limit(1))
        if replied is not None:
            return replied
    if pending is None:
        return None
    since = utcnow() - timedelta(minutes=current_app.config["ORDER_MERGE_MINUTES"])
    updated = pending.updated_at
    if updated.tzinfo is None:  # SQLite hands back naive UTC
        since = since.replace(tzinfo=None)
    return pending.id if updated >= since else None


def repeat(turn: Turn, order_id: int | None) -> Reply | str:
    """A pending copy of the shop's last confirmed order (or of the one the button names)."""
    query = select(Order.id).where(Order.shop_id == turn.shop_id, Order.status.in_([str(s) for s in SHIPPED]))
    if order_id is not None:
        query = query.where(Order.id == order_id)
    source = db.session.scalar(query.order_by(Order.id.desc()).limit(1))
    copy = None if source is None else ordering.copy_order(source, turn.message_id, turn.customer,
                                                           turn.shop_id, turn.language)
    if copy is None:
        return _info(turn, "no_last_order")
    return prompt(copy, turn.provider)


def price_answer(turn: Turn, subjects: list[str]) -> Reply:
    """Catalog prices of what the question names; no order."""
    catalog = active_catalog(turn.catalog_version)
    ids: list[int] = []
    for name in subjects:
        found = catalog.resolve(name)
        ids += [found.product.id] if found.product else [p.id for p in found.candidates]
    if not ids:
        return Reply(PRICE, dialogue.say(turn.language, "no_price") + "\n\n" + compose.help_text())
    rows = db.session.execute(select(Product.id, Product.name, Product.unit, Product.price)
                              .where(Product.id.in_(ids), Product.active.is_(True)))
    by_id = {row.id: row for row in rows}
    priced = [(by_id[i].name, by_id[i].unit, by_id[i].price) for i in dict.fromkeys(ids) if i in by_id]
    return Reply(PRICE, dialogue.price_list(turn.language, priced[:MAX_PRICES]))


def _changed_message(turn: Turn, event: InboundMessage):
    """The shop's order a message made or amended (by the provider id it edits or deletes), locked."""
    source = db.session.scalar(select(WebhookMessage.id).where(
        WebhookMessage.message_id == event.context_id, WebhookMessage.webhook_source == turn.provider))
    if source is None:
        return None, None
    started = db.session.scalar(select(Order.id).where(Order.webhook_message_id == source,
                                                       Order.shop_id == turn.shop_id))
    if started is None:
        started = db.session.scalar(select(OrderItem.order_id).where(OrderItem.webhook_message_id == source)
                                    .limit(1))
    return source, None if started is None else _order(started, turn.shop_id)


def _note_for_ops(order, what: str) -> str:
    note = f"{what} of a message of order #{order.id}, which is {order.status}: not applied"
    db.session.add(OpsAction(action="shop_" + what, order_id=order.id, detail=note))
    return note


def on_edit(turn: Turn, event: InboundMessage) -> Reply | str:
    """An edit of an order message re-reads its lines while the order is pending."""
    source, order = _changed_message(turn, event)
    if order is None:
        return f"edit of {event.context_id}: it made no order; recorded"
    if order.status != OrderStatus.PENDING:
        return _note_for_ops(order, "edit")
    lines = ordering.read_lines(event.text, active_catalog(turn.catalog_version))
    amended = ordering.amend(order.id, lines, source, replace=True)
    if not amended.view.lines:
        lifecycle.transition(order.id, OrderStatus.PENDING, OrderStatus.CANCELLED, lifecycle.SHOP)
        return _announce(order.id, "cancelled", order.language, "nothing_left")
    return prompt(order.id, turn.provider, tuple(amended.left_out), known=amended.view)


def on_delete(turn: Turn, event: InboundMessage) -> Reply | str:
    """Deleting the message that started a pending order cancels it; deleting an amendment undoes it."""
    source, order = _changed_message(turn, event)
    if order is None:
        return f"deletion of {event.context_id}: it made no order; recorded"
    if order.status != OrderStatus.PENDING:
        return _note_for_ops(order, "delete")
    if order.webhook_message_id != source:
        ordering.remove_lines_of(order.id, source)
        if ordering.item_count(order.id):
            return prompt(order.id, turn.provider)
    return cancel(turn, order.id, order.status, order.language)


def on_cart(turn: Turn, event: InboundMessage) -> Reply:
    """A catalog cart: a pending order of exactly its known SKUs at catalog prices."""
    cart = ordering.read_cart(event.cart, turn.message_id)
    if not cart.items:
        return Reply(CLARIFICATION, compose.cart_not_found(cart.unknown))
    order_id = ordering.insert_order(turn.message_id, turn.customer, turn.shop_id, cart.items, turn.language)
    reply = prompt(order_id, turn.provider)
    notes = compose.cart_notes(cart.unknown, cart.repriced)
    return Reply(reply.kind, reply.body + notes, reply.payload, order_id) if notes else reply
