"""Helpers for the order desk tests: shops and their orders as the worker leaves them, signed-in clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from khaacho.auth.cli import create_user
from khaacho.extensions import db
from khaacho.models import Order, Shop, WebhookMessage
from khaacho.orders.catalog import active_catalog
from khaacho.processing.ordering import create_order, read_lines
from tests.test_auth import login


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
              at: datetime | None = None, source: str = "whatsapp") -> int:
    """The order the worker makes from a text message (lines read by the real matcher), now in ``status``."""
    with app.app_context():
        shop = db.session.get(Shop, shop_id) if shop_id else None
        phone = shop.phone_number if shop else "+9779800000000"
        at = at or datetime.now(UTC) - timedelta(minutes=10)
        n = db.session.scalar(select(func.count()).select_from(WebhookMessage)) + 1
        message = WebhookMessage(message_id=f"wamid.DESK{n:06d}", webhook_source=source, phone_number=phone,
                                 sender_id=phone, message_text=text, status="completed", payload=None,
                                 first_received_at=at, created_at=at, updated_at=at)
        db.session.add(message)
        db.session.flush()
        lines = read_lines(text, active_catalog())
        order_id = create_order(message.id, phone, shop_id, lines, "en").order_id
        assert order_id is not None, f"no line of {text!r} makes an order"
        db.session.execute(update(Order).where(Order.id == order_id)
                           .values(status=status, created_at=at, updated_at=at))
        db.session.commit()
        return order_id


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
