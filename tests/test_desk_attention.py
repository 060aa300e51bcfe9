"""What needs a person (media, unmatched lines mapped to a product once, expired clarifications); shops."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import OpsAction, Order, Product
from tests.desk_support import add_order, add_shop, signed_in
from tests.processing_support import add_message
from tests.test_auth import csrf_from


def _product(app, sku: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Product.id).where(Product.sku == sku))


def _order(app, order_id: int) -> Order:
    with app.app_context():
        order = db.session.get(Order, order_id)
        order.items  # noqa: B018  (load before the session closes)
        db.session.expunge_all()
        return order


def test_attention_lists_media_with_its_reference_and_expired_clarifications(shop):
    image = {"id": "1479837382903443", "mime_type": "image/jpeg", "caption": "हाम्रो सूची"}
    photo = add_message(shop, None, status="needs_attention", message_type="image",
                        payload={"from": "9779841234567", "id": "wamid.IN00001", "timestamp": "1765000000",
                                 "type": "image", "image": image})
    # "dal" fits several products: the line waits for the shop's pick, and the order expired meanwhile.
    expired = add_order(shop, add_shop(shop), text="2 kg dal\n1 kg chini", status="expired")
    page = signed_in(shop, "viewer").get("/dashboard/attention").get_data(as_text=True)
    assert f"/dashboard/messages/{photo}" in page
    assert "1479837382903443" in page and "हाम्रो सूची" in page
    assert f"/dashboard/orders/{expired}" in page.split("Clarifications that expired")[1]
    # An expired order waits for nobody: its line is not offered for re-reading.
    assert "2 kg dal" not in page.split("Lines no product matched")[1].split("Clarifications that expired")[0]


def test_mapping_an_unmatched_text_adds_an_alias_and_rereads_the_waiting_messages_once(shop):
    hari, sita = add_shop(shop), add_shop(shop, "+9779812345678", "Sita Stores")
    # "xyzzy" fits no product: the worker leaves the line out of the order and tells the shop.
    waiting = [add_order(shop, hari, text="2 kg xyzzy\n1 kg chini", status="pending"),
               add_order(shop, sita, text="5 kg Xyzzy\n3 packet wai wai", status="pending")]
    confirmed = add_order(shop, sita, text="3 kg xyzzy\n1 kg chini", status="confirmed")
    before = {o: _order(shop, o) for o in [*waiting, confirmed]}
    assert all(len(o.items) == 1 for o in before.values())
    admin = signed_in(shop, "admin")
    page = admin.get("/dashboard/attention").get_data(as_text=True)
    unmatched = page.split("Lines no product matched")[1].split("Clarifications that expired")[0]
    assert "2 kg xyzzy" in unmatched and "5 kg Xyzzy" in unmatched and "3 kg xyzzy" not in unmatched

    rice = _product(shop, "RICE")
    confirm = admin.get(f"/dashboard/attention/alias?words=xyzzy&product_id={rice}")
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "2 waiting messages" in text and "2 lines in 2 orders" in text
    token = csrf_from(text)

    done = admin.post("/dashboard/attention/alias", data={"words": "xyzzy", "product_id": rice,
                                                          "csrf_token": token}, follow_redirects=True)
    assert "re-read 2 waiting messages (2 lines in 2 orders)" in done.get_data(as_text=True)
    for order_id, kg in zip(waiting, (2, 5), strict=True):
        after = _order(shop, order_id)
        added = [item for item in after.items if item.product_id == rice]
        assert len(added) == 1 and added[0].quantity == kg
        assert after.total == before[order_id].total + kg * Decimal("85.00")
        assert after.version == 2
    untouched = _order(shop, confirmed)
    assert len(untouched.items) == 1 and untouched.version == 1
    with shop.app_context():
        assert db.session.get(Product, rice).aliases.split("|").count("xyzzy") == 1

    again = admin.post("/dashboard/attention/alias", data={"words": "xyzzy", "product_id": rice,
                                                           "csrf_token": token}, follow_redirects=True)
    assert "re-read 0 waiting messages" in again.get_data(as_text=True)
    for order_id in waiting:
        after = _order(shop, order_id)
        assert after.version == 2 and len(after.items) == 2
    with shop.app_context():
        assert db.session.get(Product, rice).aliases.split("|").count("xyzzy") == 1
        details = [json.loads(a.detail) for a in db.session.scalars(
            select(OpsAction).where(OpsAction.action == "alias").order_by(OpsAction.id))]
    assert [d["lines"] for d in details] == [2, 0]
    # A new order saying it is matched from the start.
    later = add_order(shop, hari, text="4 kg xyzzy", status="pending")
    assert _order(shop, later).items[0].product_id == rice


def test_a_line_waiting_for_the_shops_pick_is_resolved_by_the_mapping(shop):
    order = add_order(shop, add_shop(shop), text="2 kg dal\n1 kg chini", status="pending")
    (waiting,) = [item for item in _order(shop, order).items if item.product_id is None]
    admin = signed_in(shop, "admin")
    musuro = _product(shop, "DAL-MUSURO")
    text = admin.get(f"/dashboard/attention/alias?words=dal&product_id={musuro}").get_data(as_text=True)
    assert "1 waiting message<" in text and "(1 line in 1 order)" in text
    admin.post("/dashboard/attention/alias", data={"words": "dal", "product_id": musuro,
                                                   "csrf_token": csrf_from(text)})
    after = _order(shop, order)
    (item,) = [i for i in after.items if i.id == waiting.id]
    assert item.product_id == musuro and item.candidates is None and item.unit_price == Decimal("160.00")
    assert after.total == Decimal("430.00") and after.version == 2


def test_viewers_cannot_map_and_the_mapping_needs_csrf(shop):
    order = add_order(shop, add_shop(shop), text="2 kg xyzzy\n1 kg chini", status="pending")
    rice = _product(shop, "RICE")
    viewer = signed_in(shop, "viewer")
    page = viewer.get("/dashboard/attention").get_data(as_text=True)
    assert "Map…" not in page
    assert viewer.get(f"/dashboard/attention/alias?words=xyzzy&product_id={rice}").status_code == 403
    token = csrf_from(viewer.get(f"/dashboard/orders/{order}").get_data(as_text=True))
    assert viewer.post("/dashboard/attention/alias",
                       data={"words": "xyzzy", "product_id": rice, "csrf_token": token}).status_code == 403
    admin = signed_in(shop, "admin")
    unsigned = admin.post("/dashboard/attention/alias", data={"words": "xyzzy", "product_id": rice})
    assert unsigned.status_code == 400
    assert admin.get("/dashboard/attention/alias?words=xyzzy&product_id=abc").status_code == 400
    assert len(_order(shop, order).items) == 1
    with shop.app_context():
        assert "xyzzy" not in db.session.get(Product, rice).aliases


def test_shops_page_shows_orders_count_last_order_and_this_months_total(shop):
    hari = add_shop(shop, latitude=27.7, longitude=85.3, address="Asan")
    add_shop(shop, "+9779812345678", "Quiet Shop")
    now = datetime.now(UTC)
    add_order(shop, hari, text="1 kg chini", status="delivered", at=now - timedelta(minutes=30))
    add_order(shop, hari, text="2 kg chini", status="confirmed", at=now - timedelta(minutes=20))
    add_order(shop, hari, text="5 kg chini", status="cancelled", at=now - timedelta(minutes=10))
    page = signed_in(shop, "viewer").get("/dashboard/shops").get_data(as_text=True)
    row = page.split("Hari Kirana Pasal")[1].split("</tr>")[0]
    assert ">3<" in row and "NPR 330.00" in row and "openstreetmap.org" in row
    quiet = page.split("Quiet Shop")[1].split("</tr>")[0]
    assert ">0<" in quiet and "NPR 0" in quiet
    found = signed_in(shop, "admin").get(f"/dashboard/shops?q={quote('quiet')}").get_data(as_text=True)
    assert "Quiet Shop" in found and "Hari Kirana Pasal" not in found
