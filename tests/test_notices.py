"""Order notices (expiry, the desk's status changes): once per order and status; the 24-hour window."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from khaacho.extensions import db, huey
from khaacho.models import Order, OutboundMessage, Shop, utcnow
from khaacho.processing import expiry
from khaacho.replies import notices
from khaacho.tasks import expire_pending_orders
from tests.conversation_support import Chat
from tests.intake_support import hold_tasks
from tests.processing_support import ORDER_TEXT


def _age(app, hours: float, shop_too: bool) -> None:
    """Make the pending orders (and, with ``shop_too``, the shop's last message) ``hours`` old."""
    when = utcnow() - timedelta(hours=hours)
    with app.app_context():
        db.session.execute(update(Order).values(updated_at=when))
        if shop_too:
            db.session.execute(update(Shop).values(last_inbound_at=when))
        db.session.commit()


def _notices(app) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [(row.kind, row.status, row.dedup_key) for row in db.session.execute(
            select(OutboundMessage.kind, OutboundMessage.status, OutboundMessage.dedup_key)
            .where(OutboundMessage.webhook_message_id.is_(None)))]


def test_an_unconfirmed_order_expires_with_one_notice_inside_the_window(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.replies()
    _age(shop, 23, shop_too=False)
    with shop.app_context():
        assert expiry.expire_pending() == 0  # not yet ORDER_CONFIRM_HOURS (24)
    _age(shop, 25, shop_too=False)
    with shop.app_context():
        assert expiry.expire_pending() == 1
        assert expiry.expire_pending() == 0
        order_id = db.session.scalar(select(Order.id))
        assert notices.order_notice(order_id, "expired") is None  # stored once per order and status
        db.session.commit()

    [notice] = chat.replies()
    assert notice.raw["type"] == "text" and "has expired" in notice.body
    assert chat.orders()[0][1] == "expired"
    assert _notices(shop) == [("status_update", "sent", f"order:{order_id}:expired")]
    chat.tap(f"order:{order_id}:v1:confirm")  # too late: nothing happens
    assert chat.replies() == [] and chat.orders()[0][1] == "expired"


@pytest.mark.parametrize("source", ["whatsapp", "twilio"])
def test_outside_the_window_without_a_template_the_notice_waits_as_needs_template(shop, httpserver, source):
    chat = Chat(shop, httpserver, source)
    chat.say(ORDER_TEXT)
    chat.replies()
    _age(shop, 30, shop_too=True)
    with shop.app_context():
        assert expiry.expire_pending() == 1
    assert chat.replies() == []
    [(kind, status, _)] = _notices(shop)
    assert (kind, status) == ("status_update", "needs_template")


def test_outside_the_window_meta_sends_the_configured_template(shop, httpserver):
    shop.config.update(WHATSAPP_TEMPLATE_ORDER_UPDATE="order_update", WHATSAPP_TEMPLATE_LANGUAGE="ne")
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.replies()
    _age(shop, 30, shop_too=True)
    with shop.app_context():
        expiry.expire_pending()
        order_id = db.session.scalar(select(Order.id))

    [notice] = chat.replies()
    assert notice.raw["type"] == "template"
    template = notice.raw["template"]
    assert template["name"] == "order_update" and template["language"] == {"code": "ne"}
    assert template["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": str(order_id)}, {"type": "text", "text": "expired / samaya sakiyo"}]}]
    assert _notices(shop)[0][1] == "sent"


def test_outside_the_window_twilio_sends_the_configured_content(shop, httpserver):
    shop.config.update(TWILIO_CONTENT_SID_ORDER_UPDATE="HX0123456789abcdef0123456789abcdef")
    chat = Chat(shop, httpserver, "twilio")
    chat.say("चिनी ५ केजी")
    chat.replies()
    _age(shop, 30, shop_too=True)
    with shop.app_context():
        expiry.expire_pending()
        order_id = db.session.scalar(select(Order.id))

    [notice] = chat.replies()
    assert notice.raw["ContentSid"] == "HX0123456789abcdef0123456789abcdef" and "Body" not in notice.raw
    assert json.loads(notice.raw["ContentVariables"]) == {"1": str(order_id), "2": "समय सकियो"}


def test_a_status_change_notice_inside_the_window_is_free_form_and_sent_once(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.tap(chat.replies()[0].buttons[0])
    chat.replies()
    with shop.app_context():
        order_id = db.session.scalar(select(Order.id))
        db.session.execute(update(Order).values(status="dispatched"))
        first = notices.order_notice(order_id, "dispatched")
        db.session.commit()
        again = notices.order_notice(order_id, "dispatched")
        db.session.commit()
    assert first is not None and again is None
    [notice] = chat.replies()
    assert notice.body == f"Order #{order_id}: on its way / pathaiyo"


def test_a_notice_whose_send_task_was_lost_goes_out_once_from_the_periodic_task(shop, httpserver,
                                                                              monkeypatch):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.replies()
    hold_tasks(monkeypatch)  # the send task is queued nowhere that runs: as if Redis lost it
    with shop.app_context():
        order_id = db.session.scalar(select(Order.id))
        notices.order_notice(order_id, "cancelled")
        db.session.commit()
    assert chat.replies() == [] and _notices(shop)[0][1] == "pending"
    with shop.app_context():
        db.session.execute(update(OutboundMessage).values(updated_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
    monkeypatch.setattr(huey, "_immediate", True)
    expire_pending_orders.call_local()
    expire_pending_orders.call_local()
    [notice] = chat.replies()
    assert "is cancelled" not in notice.body and notice.body.startswith(f"Order #{order_id}: cancelled")
    assert _notices(shop)[0][1] == "sent"
