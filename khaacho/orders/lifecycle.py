"""The order's statuses and the moves between them, in one place for the worker, the desk and the CLI.

A move is one conditional ``UPDATE … WHERE status = <from>``: whoever moves an order first wins,
and everyone else learns from the row count that it did not happen, so a move (and the notice
that follows it) takes effect once however many workers, taps or ops clicks race for it.
"""

from __future__ import annotations

from sqlalchemy import Row, bindparam, exists, select, update

from khaacho.extensions import db
from khaacho.models import Order, OrderItem, OrderStatus, utcnow

PENDING, CONFIRMED, CANCELLED, EXPIRED, DISPATCHED, DELIVERED = (
    OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
    OrderStatus.DISPATCHED, OrderStatus.DELIVERED)

# Who may make which move: the shop (over WhatsApp), ops (desk, CLI) or the system (expiry).
SHOP, OPS, SYSTEM = "shop", "ops", "system"
TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], frozenset[str]] = {
    (PENDING, CONFIRMED): frozenset({SHOP, OPS}),
    (PENDING, CANCELLED): frozenset({SHOP, OPS}),
    (PENDING, EXPIRED): frozenset({SYSTEM}),
    (CONFIRMED, DISPATCHED): frozenset({OPS}),
    (CONFIRMED, CANCELLED): frozenset({SHOP, OPS}),  # the shop only until it is dispatched
    (DISPATCHED, DELIVERED): frozenset({OPS}),
    (DISPATCHED, CANCELLED): frozenset({OPS}),
}


def allowed(current: str, new: str, actor: str = OPS) -> bool:
    """Whether ``actor`` may move an order from ``current`` to ``new``."""
    try:
        return actor in TRANSITIONS.get((OrderStatus(current), OrderStatus(new)), frozenset())
    except ValueError:
        return False


def targets(current: str, actor: str = OPS) -> list[OrderStatus]:
    """The statuses ``actor`` may move an order in ``current`` to, in lifecycle order."""
    return [new for new in OrderStatus if allowed(current, new, actor)]


def transition(order_id: int, current: str, new: str, actor: str = OPS,
               version: int | None = None) -> bool:
    """Move the order from ``current`` to ``new`` (not committed); True if this call moved it.

    ``version``, when given, must also still be the order's: a tap on an older confirmation
    confirms nothing. A move the lifecycle does not allow raises ``ValueError``.
    """
    if not allowed(current, new, actor):
        raise ValueError(f"{actor} may not move an order from {current} to {new}")
    conditions = [Order.id == order_id, Order.status == str(current)]
    if version is not None:
        conditions.append(Order.version == version)
    return db.session.execute(
        update(Order).where(*conditions).values(status=str(new), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


_orders, _items = Order.__table__, OrderItem.__table__
# Confirmed only as the shop's order at the version the shop saw, once no line waits for its pick.
_CONFIRM = (
    update(_orders)
    .where(_orders.c.id == bindparam("_order_id"), _orders.c.shop_id == bindparam("_shop_id"),
           _orders.c.status == PENDING.value, _orders.c.version == bindparam("_version"),
           ~exists().where(_items.c.order_id == _orders.c.id, _items.c.product_id.is_(None)))
    .values(status=CONFIRMED.value, updated_at=bindparam("_now"))
    .returning(_orders.c.total, _orders.c.language)
)


def confirm(order_id: int, shop_id: int | None, version: int, actor: str = SHOP) -> Row | None:
    """Confirm the shop's pending order at ``version`` once its lines are all chosen (not committed).

    Returns its ``total`` and ``language``; None when it did not move: it is not this shop's,
    no longer pending at that version, or a line still waits for the shop's pick.
    """
    if not allowed(PENDING, CONFIRMED, actor):
        raise ValueError(f"{actor} may not move an order from {PENDING} to {CONFIRMED}")
    moved = db.session.execute(_CONFIRM, {"_order_id": order_id, "_shop_id": shop_id, "_version": version,
                                          "_now": utcnow()})
    return moved.one_or_none()


def change_status(order_id: int, new: str, actor: str = OPS) -> str | None:
    """Move the order to ``new`` from whatever it is now, if ``actor`` may (not committed).

    Returns the status it left, or None when the move is not allowed or another move won the race.
    """
    current = db.session.scalar(select(Order.status).where(Order.id == order_id))
    if current is None or not allowed(current, new, actor):
        return None
    return current if transition(order_id, current, new, actor) else None
