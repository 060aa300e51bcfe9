"""Every message kind of both providers, posted as a signed webhook and run through the worker.

The webhook stores the message (its task held, not run inline); the test then runs the worker on
the stored row, as the queue would. A pytest-httpserver on loopback stands in for both providers.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from khaacho.extensions import db
from khaacho.models import Order, OrderItem, Product
from khaacho.processing import worker
from tests.intake_support import hold_tasks
from tests.kinds_support import META_EXPECTED, META_KINDS, TWILIO_EXPECTED, TWILIO_KINDS, post_kind, shops
from tests.processing_support import load, meta_ok, provider_requests, twilio_ok

# The message each one replies to, taps on, edits, deletes or reacts to.
CONTEXTS = {"reply_with_context": "wamid.CONFIRMATION1", "button_reply": "wamid.CONFIRMATION1",
            "list_reply": "wamid.CLARIFY1", "template_quick_reply": "wamid.TEMPLATE1",
            "flow_reply": "wamid.FLOW1", "edit": "wamid.K01", "revoke": "wamid.K01",
            "reaction": "wamid.CONFIRMATION1"}


def test_every_fixture_has_an_expectation():
    assert set(META_EXPECTED) == {k for k in META_KINDS if not k.startswith("_")}
    assert set(TWILIO_EXPECTED) == {k for k in TWILIO_KINDS if not k.startswith("_")}


def _run_kind(app, httpserver, monkeypatch, source: str, name: str, expected: tuple):
    kind, status, reply_kind, note = expected
    (meta_ok if source == "whatsapp" else twilio_ok)(httpserver)
    hold_tasks(monkeypatch)
    row_id = post_kind(app, source, name)
    stored, _, _ = load(app, row_id)
    assert (stored.message_type, stored.status) == (kind, "queued")

    with app.app_context():
        first = worker.process(row_id)
        again = worker.process(row_id)  # a second run (sweep, replay) changes nothing

    message, order, reply = load(app, row_id)
    assert (first.status, again.status) == (status, "skipped")
    assert message.status == status
    if note is None:
        assert message.error_message is None
    else:
        assert note in message.error_message
    if reply_kind is None:
        assert reply is None and provider_requests(httpserver) == []
    else:
        assert reply.kind == reply_kind and reply.status == "sent"
        assert len(provider_requests(httpserver)) == 1
    if reply_kind != "confirmation":
        assert order is None  # nothing but order text and carts makes an order
    return message, order, reply


@pytest.mark.parametrize("name", sorted(META_EXPECTED))
def test_meta_message_kind_is_understood_by_its_type(shop, httpserver, monkeypatch, name):
    message, _, _ = _run_kind(shop, httpserver, monkeypatch, "whatsapp", name, META_EXPECTED[name])
    assert message.context_message_id == CONTEXTS.get(name)


@pytest.mark.parametrize("name", sorted(TWILIO_EXPECTED))
def test_twilio_message_kind_is_understood_by_its_type(shop, httpserver, monkeypatch, name):
    message, _, _ = _run_kind(shop, httpserver, monkeypatch, "twilio", name, TWILIO_EXPECTED[name])
    replied_to = {"reply_with_context": "SMCONFIRMATION1", "button": "SMCONFIRMATION1"}.get(name)
    assert message.context_message_id == replied_to


def test_a_catalog_cart_becomes_an_order_of_exactly_its_skus_at_catalog_prices(shop, httpserver, monkeypatch):
    _, order, reply = _run_kind(shop, httpserver, monkeypatch, "whatsapp", "catalog_cart",
                                META_EXPECTED["catalog_cart"])
    with shop.app_context():
        items = db.session.execute(select(Product.sku, OrderItem.quantity, OrderItem.unit_price)
                                   .join(Product).where(OrderItem.order_id == order.id).order_by(Product.sku))
        assert [(sku, int(q), str(p)) for sku, q, p in items] == [
            ("SUGAR", 5, "110.00"), ("WAI-WAI", 2, "25.00")]
    assert str(order.total) == "600.00"  # 5 × 110 + 2 × 25, not the cart's 20 a packet
    assert order.shop_id is not None and reply.shop_id == order.shop_id
    assert "Sugar: 5 kg × NPR 110.00 = NPR 550.00" in reply.body
    assert "Not in our catalog, left out" in reply.body and "• NOODLE-UNKNOWN" in reply.body
    assert "Wai Wai Noodles: NPR 25.00 (cart showed NPR 20.00)" in reply.body


def test_a_cart_of_unknown_skus_makes_no_order_and_says_which(sqlite_shop, httpserver, monkeypatch):
    meta_ok(httpserver)
    hold_tasks(monkeypatch)
    cart = {"catalog_id": "1", "product_items": [{"product_retailer_id": "NOPE-1", "quantity": 1,
                                                  "item_price": 5, "currency": "NPR"}]}
    row_id = post_kind(sqlite_shop, "whatsapp", "catalog_cart", order=cart)
    with sqlite_shop.app_context():
        assert worker.process(row_id).status == "completed"
    _, order, reply = load(sqlite_shop, row_id)
    assert order is None and reply.kind == "clarification"
    assert "not in our catalog" in reply.body and "• NOPE-1" in reply.body


def test_a_location_is_stored_on_the_shop_and_never_read_as_an_order(shop, httpserver, monkeypatch):
    """A pin named "Salt Trading Corporation Ltd, Kathmandu 44600" once made an order for salt."""
    _, _, reply = _run_kind(shop, httpserver, monkeypatch, "whatsapp", "location", META_EXPECTED["location"])
    assert shops(shop) == [("+9779841234567", None, "Hari Kirana Pasal", 27.6939, 85.2946,
                            "Salt Trading Corporation Ltd, Kalimati, Kathmandu 44600")]
    assert "saved this as your delivery location: Salt Trading Corporation Ltd" in reply.body
    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_list_tap_naming_a_product_makes_no_order(shop, httpserver, monkeypatch):
    _run_kind(shop, httpserver, monkeypatch, "twilio", "list_reply", TWILIO_EXPECTED["list_reply"])
    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_group_message_gets_no_reply_not_even_a_private_one(shop, httpserver, monkeypatch):
    _run_kind(shop, httpserver, monkeypatch, "whatsapp", "group_text", META_EXPECTED["group_text"])
    assert shops(shop) == []  # a group participant is not a one-to-one customer


def test_several_photos_at_once_are_acknowledged_once_and_all_kept(shop, httpserver, monkeypatch):
    meta_ok(httpserver)
    hold_tasks(monkeypatch)
    first = post_kind(shop, "whatsapp", "image")
    second = post_kind(shop, "whatsapp", "document")
    with shop.app_context():
        assert [worker.process(first).status, worker.process(second).status] == ["needs_attention"] * 2
    (_, _, ack), (message, _, none) = load(shop, first), load(shop, second)
    assert ack.kind == "acknowledgement" and none is None
    assert message.error_message.startswith("document 1480123456789016 (application/pdf)")
    assert message.error_message.endswith("in the last 10 minutes; not told again")
    assert len(provider_requests(httpserver)) == 1
