"""Helpers for the processing tests: messages as the intake stores them, provider stand-ins."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from khaacho.demo import DEMO_CATALOG
from khaacho.extensions import db
from khaacho.models import Order, OutboundMessage, WebhookMessage, utcnow
from khaacho.orders.catalog import import_catalog
from tests.conftest import SECRETS

PHONE = "+9779841234567"
META_PATH = f"/{SECRETS['WHATSAPP_PHONE_NUMBER_ID']}/messages"
TWILIO_PATH = f"/2010-04-01/Accounts/{SECRETS['TWILIO_ACCOUNT_SID']}/Messages.json"
ORDER_TEXT = "10 kg chini ra 5 kg musuro dal"


def open_shop(app, httpserver):
    """The app with the demo catalog loaded and both providers pointed at the loopback server."""
    base = httpserver.url_for("").rstrip("/")
    app.config.update(WHATSAPP_API_URL=base, TWILIO_API_URL=base)
    with app.app_context():
        import_catalog(DEMO_CATALOG)
    return app


def meta_ok(httpserver, wamid: str = "wamid.REPLY1") -> None:
    httpserver.expect_request(META_PATH, method="POST").respond_with_json(
        {"messaging_product": "whatsapp", "contacts": [{"input": "9779841234567"}],
         "messages": [{"id": wamid}]}
    )


def twilio_ok(httpserver, sid: str = "SM00000000000000000000000000000001") -> None:
    httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_json({"sid": sid, "status": "queued"},
                                                                            status=201)


def add_message(app, text: str | None, source: str = "whatsapp", status: str = "queued",
                phone: str | None = PHONE, sender: str | None = None, age: timedelta = timedelta(0),
                **fields) -> int:
    """Insert a message row as the intake would have stored it; returns its id."""
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(WebhookMessage))
        when = utcnow() - age
        message = WebhookMessage(
            message_id=f"{'wamid.IN' if source == 'whatsapp' else 'SM'}{count + 1:05d}",
            webhook_source=source,
            phone_number=phone, sender_id=sender or phone, message_text=text, status=status,
            created_at=when, first_received_at=when, updated_at=when, **fields,
        )
        db.session.add(message)
        db.session.commit()
        return message.id


def load(app, message_id: int) -> tuple[WebhookMessage, Order | None, OutboundMessage | None]:
    with app.app_context():
        message = db.session.get(WebhookMessage, message_id)
        order = db.session.scalar(select(Order).where(Order.webhook_message_id == message_id))
        if order is not None:
            order.items  # noqa: B018  (load before the session closes)
        reply = db.session.scalar(
            select(OutboundMessage).where(OutboundMessage.webhook_message_id == message_id))
        db.session.expunge_all()
        return message, order, reply


def provider_requests(httpserver) -> list:
    return [request for request, _ in httpserver.log]
