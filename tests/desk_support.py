"""Helpers for the order desk tests: shops and their orders as the worker leaves them, signed-in clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from khaacho.auth.cli import create_user
from khaacho.extensions import db
from khaacho.models import Order, OrderItem, Shop, WebhookMessage
from khaacho.orders.catalog import active_catalog
from khaacho.orders.matcher import read_order
from tests.test_auth import login

CENT = Decimal("0.01")


def add_shop(app, phone: str = "+9779841234567", name: str = "Hari Kirana Pasal",
             last_inbound: timedelta = timedelta(minutes=5), **fields) -> int:
    """A shop that last wrote ``last_inbound`` ago; returns its id."""
    with app.app_context():
        shop = Shop(phone_number=phone, profile_name=name,
                    last_inbound_at=datetime.now(UTC) - last_inbound, **fields)
        db.session.add(shop)
        db.session.commit()
        return shop.id


def add_order(app, shop_id: int | None, text: str = "10 kg chini\n5 kg musuro dal", status: str = "confirmed",
              at: datetime | None = None, source: str = "whatsapp", message_type: str = "text") -> int:
    """The order a message made, its lines read by the real matcher; returns the order id."""
    with app.app_context():
        shop = db.session.get(Shop, shop_id) if shop_id else None
        phone = shop.phone_number if shop else "+9779800000000"
        at = at or datetime.now(UTC) - timedelta(minutes=10)
        n = db.session.scalar(select(func.count()).select_from(WebhookMessage)) + 1
        message = WebhookMessage(message_id=f"wamid.DESK{n:06d}", webhook_source=source, phone_number=phone,
                                 sender_id=phone, message_type=message_type, message_text=text,
                                 status="completed", payload=None, first_received_at=at, created_at=at,
                                 updated_at=at)
        db.session.add(message)
        db.session.flush()
        lines = read_order(text, active_catalog())
        items = [OrderItem(raw_text=line.text, product_id=line.product_id, unit=line.unit,
                           quantity=Decimal(str(round(line.quantity, 3))), unit_price=line.unit_price,
                           webhook_message_id=message.id) for line in lines]
        total = sum(((i.quantity * i.unit_price).quantize(CENT) for i in items
                     if i.product_id is not None and i.unit_price is not None), Decimal("0"))
        order = Order(webhook_message_id=message.id, shop_id=shop_id, phone_number=phone, status=status,
                      total=total, created_at=at, updated_at=at, items=items)
        db.session.add(order)
        db.session.commit()
        return order.id


def signed_in(app, role: str = "admin"):
    """A test client signed in as a new user with ``role``."""
    email = f"{role}@khaacho.local"
    with app.app_context():
        create_user(email, "correct horse", role)
        db.session.commit()
    client = app.test_client()
    login(client, email)
    return client


def order_status(app, order_id: int) -> str:
    with app.app_context():
        return db.session.get(Order, order_id).status
