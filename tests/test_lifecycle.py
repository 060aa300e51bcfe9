"""Order statuses and the moves between them: one place, conditional, whoever races."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import ORDER_STATUSES, Order, OrderStatus
from khaacho.orders import lifecycle
from tests.processing_support import PHONE, add_message


def _order(app, status: str = "pending", version: int = 1) -> int:
    message_id = add_message(app, "5 kg chini")
    with app.app_context():
        order = Order(webhook_message_id=message_id, phone_number=PHONE, status=status, version=version)
        db.session.add(order)
        db.session.commit()
        return order.id


def _status(app, order_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Order.status).where(Order.id == order_id))


def test_the_statuses_are_the_contracts():
    assert ORDER_STATUSES == ("pending", "confirmed", "cancelled", "expired", "dispatched", "delivered")


@pytest.mark.parametrize("current,new,actor,ok", [
    ("pending", "confirmed", "shop", True), ("pending", "confirmed", "ops", True),
    ("pending", "expired", "system", True), ("pending", "expired", "ops", False),
    ("confirmed", "cancelled", "shop", True), ("dispatched", "cancelled", "shop", False),
    ("dispatched", "cancelled", "ops", True), ("confirmed", "dispatched", "shop", False),
    ("dispatched", "delivered", "ops", True), ("delivered", "cancelled", "ops", False),
    ("cancelled", "confirmed", "ops", False), ("expired", "confirmed", "shop", False),
    ("received", "confirmed", "ops", False),
])
def test_who_may_move_an_order_where(current, new, actor, ok):
    assert lifecycle.allowed(current, new, actor) is ok


def test_ops_targets_follow_the_lifecycle():
    assert lifecycle.targets("confirmed") == [OrderStatus.CANCELLED, OrderStatus.DISPATCHED]
    assert lifecycle.targets("delivered") == []


def test_a_move_happens_once_and_not_for_an_old_version(any_app):
    order_id = _order(any_app, version=2)
    with any_app.app_context():
        assert lifecycle.transition(order_id, "pending", "confirmed", "shop", version=1) is False
        assert lifecycle.transition(order_id, "pending", "confirmed", "shop", version=2) is True
        assert lifecycle.transition(order_id, "pending", "confirmed", "shop", version=2) is False
        with pytest.raises(ValueError):
            lifecycle.transition(order_id, "confirmed", "delivered")
        db.session.commit()
    assert _status(any_app, order_id) == "confirmed"


def test_change_status_reports_what_it_left_or_none(any_app):
    order_id = _order(any_app, status="confirmed")
    with any_app.app_context():
        assert lifecycle.change_status(order_id, "delivered") is None  # not dispatched yet
        assert lifecycle.change_status(order_id, "dispatched") == "confirmed"
        assert lifecycle.change_status(order_id, "dispatched") is None
        db.session.commit()
    assert _status(any_app, order_id) == "dispatched"
