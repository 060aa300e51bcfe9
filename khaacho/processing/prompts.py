"""What a pending order asks the shop next: a question about an unclear line, or its confirmation.

Meta gets reply buttons and lists whose ids carry the order and its version
(``order:12:v2:confirm``, ``order:12:v2:pick:57:8``); Twilio gets the same as text with typed
answers (``1``/``2``/``3``, or the number of a choice).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import Select, bindparam, select

from khaacho import statements
from khaacho.extensions import db
from khaacho.models import CLARIFICATION, CONFIRMATION, Order, OrderItem, Product
from khaacho.replies import MAX_LENGTH, compose, dialogue

# Meta's interactive body holds at most 1024 characters.
INTERACTIVE_BODY = 1024
ACTIONS = ("confirm", "change", "cancel")
TAP = re.compile(r"^order:(?P<order>\d{1,18}):v(?P<version>\d{1,9}):"
                 r"(?P<action>confirm|change|cancel|pick:(?P<item>\d{1,18}):(?P<product>\d{1,18}|none))$")
ORDER_AGAIN = re.compile(r"^order-again:(?P<order>\d{1,18})$")


@dataclass(frozen=True)
class Reply:
    """A reply to store and send: its kind, text, buttons or list, the order it is about, its dedup key."""

    kind: str
    body: str
    payload: dict | None = None
    order_id: int | None = None
    dedup_key: str | None = None


@dataclass(frozen=True)
class Tap:
    """A tapped button or list row of an order prompt."""

    order_id: int
    version: int
    action: str  # confirm, change, cancel or pick
    item_id: int | None = None
    product_id: int | None = None  # None with action pick: none of these


def read_tap(tapped_id: str | None) -> Tap | None:
    """The order tap an id stands for, or None when it is not one of ours."""
    found = TAP.match(tapped_id or "")
    if found is None:
        return None
    action = found["action"]
    if action.startswith("pick:"):
        product = found["product"]
        return Tap(int(found["order"]), int(found["version"]), "pick", int(found["item"]),
                   None if product == "none" else int(product))
    return Tap(int(found["order"]), int(found["version"]), action)


class PromptLine(NamedTuple):
    """An order line as the prompt shows it (the fields of the prompt's read of a line)."""

    id: int
    raw_text: str
    quantity: Decimal
    unit: str | None
    unit_price: Decimal | None
    candidates: list[int] | None
    name: str | None  # the product's; None while the shop has to choose one


class OrderView(NamedTuple):
    """An order as its prompt shows it, when the caller knows it without reading it back."""

    version: int
    language: str
    lines: list[PromptLine]


_orders, _items, _products = Order.__table__, OrderItem.__table__, Product.__table__
# The order's version and language with each of its lines (one row with no line when it has none).
_PROMPT = (
    select(_orders.c.version, _orders.c.language, _items.c.id, _items.c.raw_text, _items.c.quantity,
           _items.c.unit, _items.c.unit_price, _items.c.candidates, _products.c.name)
    .select_from(_orders.outerjoin(_items, _items.c.order_id == _orders.c.id)
                 .outerjoin(_products, _products.c.id == _items.c.product_id))
    .where(_orders.c.id == bindparam("order_id")).order_by(_items.c.id)
)


@functools.lru_cache(maxsize=16)
def _products_among(count: int) -> Select:
    """The name, unit and price of ``count`` products by id (a statement per count, built once)."""
    ids = [bindparam(f"_id_{i}", type_=_products.c.id.type) for i in range(count)]
    return select(_products.c.id, _products.c.name, _products.c.unit, _products.c.price).where(
        _products.c.id.in_(ids))


def open_question(order_id: int) -> tuple[int, str, list[int]] | None:
    """The first line the shop still has to choose for: item id, text and candidate product ids."""
    row = db.session.execute(
        select(OrderItem.id, OrderItem.raw_text, OrderItem.candidates)
        .where(OrderItem.order_id == order_id, OrderItem.product_id.is_(None)).order_by(OrderItem.id).limit(1)
    ).one_or_none()
    return None if row is None else (row.id, row.raw_text, list(row.candidates or []))


def prompt(order_id: int, provider: str, left_out: tuple[str, ...] = (), out_of_date: bool = False,
           known: OrderView | None = None) -> Reply:
    """The order's next question, or its confirmation when every line is clear.

    ``known`` is the order as the caller just wrote it (inserted or amended): not read back.
    """
    if known is None:
        rows = db.session.execute(_PROMPT, {"order_id": order_id}).all()
        version, language = rows[0].version, rows[0].language
        lines = [row for row in rows if row.id is not None]
    else:
        version, language, lines = known
    typed = provider != "whatsapp"
    unclear = next((line for line in lines if line.name is None), None)
    if unclear is not None:
        question = (unclear.id, unclear.raw_text, list(unclear.candidates or []))
        return _clarification(order_id, version, language, question, typed)
    shown = [compose.ReplyLine(line.raw_text, line.name, Decimal(line.quantity), line.unit, line.unit_price)
             for line in lines]
    body = dialogue.confirmation(language, order_id, version, shown, list(left_out), typed, out_of_date)
    if typed:
        return Reply(CONFIRMATION, compose.shorten(body, MAX_LENGTH[provider]), order_id=order_id)
    titles = dialogue.BUTTONS[language]
    buttons = [[f"order:{order_id}:v{version}:{action}", dialogue.title(name, dialogue.BUTTON_TITLE)]
               for action, name in zip(ACTIONS, titles, strict=True)]
    return Reply(CONFIRMATION, compose.shorten(body, INTERACTIVE_BODY), {"buttons": buttons}, order_id)


def _clarification(order_id: int, version: int, language: str, question: tuple[int, str, list[int]],
                   typed: bool) -> Reply:
    item_id, text, candidate_ids = question
    products = {row.id: row for row in statements.fetch(
        _products_among(len(candidate_ids)), {f"_id_{i}": pid for i, pid in enumerate(candidate_ids)})}
    choices = [products[pid] for pid in candidate_ids if pid in products]
    options = [(p.name, f"{compose.money(p.price)} / {p.unit}") for p in choices]
    body = dialogue.clarification(language, order_id, text, options, typed)
    if typed:
        return Reply(CLARIFICATION, body, order_id=order_id)
    prefix = f"order:{order_id}:v{version}:pick:{item_id}"
    rows = [[f"{prefix}:{p.id}", dialogue.title(p.name, dialogue.ROW_TITLE),
             dialogue.title(about, dialogue.ROW_DESCRIPTION)]
            for p, (_, about) in zip(choices, options, strict=True)]
    none = dialogue.say(language, "none_of_these")
    rows.append([f"{prefix}:none", dialogue.title(none, dialogue.ROW_TITLE),
                 dialogue.title(dialogue.say(language, "none_about"), dialogue.ROW_DESCRIPTION)])
    listing = {"button": dialogue.title(dialogue.say(language, "choose"), dialogue.BUTTON_TITLE),
               "section": dialogue.title(text, dialogue.ROW_TITLE), "rows": rows}
    return Reply(CLARIFICATION, compose.shorten(body, INTERACTIVE_BODY), {"list": listing}, order_id)
