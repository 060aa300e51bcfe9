"""The order desk: the orders list, one order's page, and ops moving orders; each move tells the shop once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from khaacho.desk.orders import PER_PAGE
from khaacho.extensions import db
from khaacho.models import OpsAction, Order, OutboundMessage
from khaacho.orders import lifecycle
from tests.desk_support import add_order, add_shop, order_status, signed_in
from tests.processing_support import META_PATH, add_message, meta_ok, provider_requests
from tests.test_auth import csrf_from, page_token

PAGES = ["/dashboard/orders", "/dashboard/orders/live", "/dashboard/orders/1",
         "/dashboard/orders.csv?from=2026-12-01&to=2026-12-06", "/dashboard/attention", "/dashboard/shops"]


@pytest.mark.parametrize("path", PAGES)
def test_desk_pages_send_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_status_change_needs_a_signed_in_admin(client):
    response = client.post("/dashboard/orders/1/status", data={"status": "dispatched"})
    assert response.status_code in (302, 400)  # to /login, or refused for the missing CSRF token


def _rows(html: str) -> list[str]:
    return [chunk.split('"', 1)[0] for chunk in html.split('href="/dashboard/orders/')[1:]
            if chunk[0].isdigit()]


def test_orders_list_is_newest_first_and_filters_by_status_shop_and_days(shop):
    hari = add_shop(shop, "+9779841234567", "Hari Kirana Pasal")
    sita = add_shop(shop, "+9779812345678", "सीता स्टोर्स")
    now = datetime.now(UTC)
    old = add_order(shop, hari, at=now - timedelta(days=3), status="delivered")
    mid = add_order(shop, sita, at=now - timedelta(days=1), status="pending")
    new = add_order(shop, hari, at=now - timedelta(minutes=5), status="confirmed")
    client = signed_in(shop, "viewer")

    page = client.get("/dashboard/orders").get_data(as_text=True)
    assert _rows(page) == [str(new), str(mid), str(old)]
    assert "सीता स्टोर्स" in page and "Hari Kirana Pasal" in page

    assert _rows(client.get("/dashboard/orders?status=pending").get_data(as_text=True)) == [str(mid)]
    assert _rows(client.get("/dashboard/orders?q=सीता").get_data(as_text=True)) == [str(mid)]
    assert _rows(client.get("/dashboard/orders?q=9841234567").get_data(as_text=True)) == [str(new), str(old)]
    assert _rows(client.get("/dashboard/orders?q=hari+kirana").get_data(as_text=True)) == [str(new), str(old)]
    day = (now - timedelta(days=1)).date().isoformat()
    assert _rows(client.get(f"/dashboard/orders?from={day}&to={day}").get_data(as_text=True)) == [str(mid)]
    since = (now - timedelta(days=1)).date().isoformat()
    assert _rows(client.get(f"/dashboard/orders?from={since}").get_data(as_text=True)) == [str(new), str(mid)]


@pytest.mark.parametrize("query", ["from=yesterday", "to=2026-13-01", "status=lost",
                                   "from=2026-12-05&to=2026-12-01"])
def test_orders_list_refuses_filters_it_cannot_read(shop, query):
    response = signed_in(shop, "viewer").get(f"/dashboard/orders?{query}")
    assert response.status_code == 400


def test_orders_list_pages_older_orders_without_repeating_any(shop):
    hari = add_shop(shop)
    start = datetime.now(UTC) - timedelta(days=2)
    # Orders sharing one created_at: the id breaks the tie, so none is skipped or shown twice.
    ids = [add_order(shop, hari, text="1 kg chini", at=start + timedelta(minutes=n // 2))
           for n in range(PER_PAGE + 7)]
    client = signed_in(shop, "viewer")
    first = client.get("/dashboard/orders").get_data(as_text=True)
    assert 'id="live"' in first
    seen = _rows(first)
    assert len(seen) == PER_PAGE
    older = first.split('href="/dashboard/orders?before=')[1].split('"')[0]
    second = client.get(f"/dashboard/orders?before={older}").get_data(as_text=True)
    assert 'id="live"' not in second  # an older page stands still; only the newest is live
    seen += _rows(second)
    assert seen == [str(i) for i in sorted(ids, reverse=True)]
    assert "Older →" not in second


def test_live_refresh_brings_new_orders_in_out_of_band(shop):
    hari = add_shop(shop)
    client = signed_in(shop, "viewer")
    assert 'hx-get="/dashboard/orders/live?status=confirmed"' in client.get(
        "/dashboard/orders?status=confirmed").get_data(as_text=True)
    order = add_order(shop, hari)
    fragment = client.get("/dashboard/orders/live?status=confirmed").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="orders" hx-swap-oob="true">')
    assert f'href="/dashboard/orders/{order}"' in fragment
    assert "<html" not in fragment


def test_order_page_shows_items_shop_location_and_the_whole_conversation(shop):
    hari = add_shop(shop, latitude=27.7172, longitude=85.324, address="Asan Tole, Kathmandu")
    order = add_order(shop, hari, text="10 kg chini\n2 kg dal")
    photo = add_message(shop, None, status="needs_attention", message_type="image", age=timedelta(minutes=8),
                        error_message="photo media-ref-123 kept for a person")
    with shop.app_context():
        o = db.session.get(Order, order)
        db.session.add(OutboundMessage(webhook_message_id=o.webhook_message_id, order_id=order,
                                       kind="confirmation", provider="whatsapp", recipient="+9779841234567",
                                       body="Order #1 …", status="sent", delivery_status="read",
                                       created_at=datetime.now(UTC) - timedelta(minutes=9)))
        db.session.commit()
    page = signed_in(shop, "viewer").get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert "10 kg chini" in page and "2 kg dal" in page and "not matched" in page
    assert "Version 1" in page
    assert "Hari Kirana Pasal" in page and "+9779841234567" in page
    assert "https://www.openstreetmap.org/?mlat=27.717200&amp;mlon=85.324000" in page
    assert "Asan Tole, Kathmandu" in page
    conversation = page.split('id="conversation-title"')[1]
    assert conversation.index("10 kg chini") < conversation.index("Order #1 …") < conversation.index(
        "media-ref-123")
    assert "read" in conversation and f"/dashboard/messages/{photo}" in conversation


def test_order_page_of_an_unknown_order_is_404(shop):
    client = signed_in(shop, "viewer")
    assert client.get("/dashboard/orders/999999").status_code == 404
    assert client.get("/dashboard/orders/99999999999999999999").status_code == 404


def _move(client, order_id: int, status: str, note: str = ""):
    token = csrf_from(client.get(f"/dashboard/orders/{order_id}").get_data(as_text=True))
    return client.post(f"/dashboard/orders/{order_id}/status",
                       data={"status": status, "note": note, "csrf_token": token})


def _notices(app, order_id: int) -> list[OutboundMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboundMessage).where(
            OutboundMessage.order_id == order_id, OutboundMessage.kind == "status_update")
            .order_by(OutboundMessage.id)))
        db.session.expunge_all()
        return rows


def test_admin_moves_an_order_to_delivery_and_the_shop_is_told_once_per_move(shop, httpserver):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop), status="pending")
    admin = signed_in(shop, "admin")
    for status in ("confirmed", "dispatched", "delivered"):
        response = _move(admin, order, status, note="on the phone" if status == "confirmed" else "")
        assert response.status_code == 302
        assert order_status(shop, order) == status
    notices = _notices(shop, order)
    assert [n.status for n in notices] == ["sent"] * 3
    assert len([r for r in provider_requests(httpserver) if r.path == META_PATH]) == 3
    with shop.app_context():
        actions = db.session.scalars(select(OpsAction).where(OpsAction.order_id == order)
                                     .order_by(OpsAction.id)).all()
        details = [json.loads(a.detail) for a in actions]
    assert [(d["from"], d["to"]) for d in details] == [
        ("pending", "confirmed"), ("confirmed", "dispatched"), ("dispatched", "delivered")]
    assert details[0]["note"] == "on the phone" and all(a.user_id is not None for a in actions)
    page = admin.get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert page.count("status_update") == 3
    assert "pending → confirmed · on the phone" in page and "dispatched → delivered" in page
    assert "No further moves from delivered" in page


OPS_MOVES = sorted((str(old), str(new)) for (old, new), actors in lifecycle.TRANSITIONS.items()
                   if lifecycle.OPS in actors)


def test_the_desk_offers_every_move_ops_may_make():
    assert sorted([("pending", "confirmed"), ("pending", "cancelled"), ("confirmed", "dispatched"),
                                ("confirmed", "cancelled"), ("dispatched", "delivered"),
                                ("dispatched", "cancelled")]) == OPS_MOVES


@pytest.mark.parametrize(("start", "target"), OPS_MOVES)
def test_every_ops_move_is_made_recorded_and_told_once(shop, httpserver, start, target):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop), status=start)
    admin = signed_in(shop, "admin")
    page = admin.get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert f'name="status" value="{target}"' in page
    assert _move(admin, order, target).status_code == 302
    assert order_status(shop, order) == target
    (notice,) = _notices(shop, order)
    assert notice.status == "sent" and notice.body
    with shop.app_context():
        (action,) = db.session.scalars(select(OpsAction).where(OpsAction.order_id == order))
        assert json.loads(action.detail) == {"from": start, "to": target}


def test_setting_a_status_twice_is_409_and_the_shop_is_told_once(shop, httpserver):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop))
    admin = signed_in(shop, "admin")
    assert _move(admin, order, "dispatched").status_code == 302
    again = _move(admin, order, "dispatched")
    assert again.status_code == 409
    assert "Nothing changed" in again.get_data(as_text=True)
    assert len(_notices(shop, order)) == 1
    assert len(provider_requests(httpserver)) == 1


@pytest.mark.parametrize(("start", "target"), [("pending", "delivered"), ("pending", "dispatched"),
                                               ("delivered", "cancelled"), ("cancelled", "confirmed"),
                                               ("expired", "confirmed"), ("confirmed", "pending"),
                                               ("confirmed", "expired")])
def test_a_move_the_lifecycle_does_not_allow_is_409_and_changes_nothing(shop, httpserver, start, target):
    order = add_order(shop, add_shop(shop), status=start)
    response = _move(signed_in(shop, "admin"), order, target)
    assert response.status_code == 409
    assert order_status(shop, order) == start
    assert _notices(shop, order) == []
    with shop.app_context():
        assert db.session.scalar(select(OpsAction).where(OpsAction.order_id == order)) is None
    assert provider_requests(httpserver) == []


def test_cancel_keeps_the_note_and_an_unknown_status_is_400(shop, httpserver):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop), status="dispatched")
    admin = signed_in(shop, "admin")
    assert _move(admin, order, "shipped").status_code == 400
    assert _move(admin, order, "cancelled", note="van broke down; shop asked to cancel").status_code == 302
    assert order_status(shop, order) == "cancelled"
    page = admin.get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert "van broke down; shop asked to cancel" in page


def test_status_change_without_a_csrf_token_is_refused(shop, httpserver):
    order = add_order(shop, add_shop(shop))
    admin = signed_in(shop, "admin")
    response = admin.post(f"/dashboard/orders/{order}/status", data={"status": "dispatched"})
    assert response.status_code == 400
    forged = admin.post(f"/dashboard/orders/{order}/status", data={"status": "dispatched", "csrf_token": "x"})
    assert forged.status_code == 400
    assert order_status(shop, order) == "confirmed"
    assert provider_requests(httpserver) == []


def test_viewer_reads_the_desk_but_cannot_move_orders(shop, httpserver):
    order = add_order(shop, add_shop(shop))
    viewer = signed_in(shop, "viewer")
    page = viewer.get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert "Dispatch" not in page and 'name="status"' not in page
    response = viewer.post(f"/dashboard/orders/{order}/status",
                           data={"status": "dispatched", "csrf_token": page_token(viewer)})
    assert response.status_code == 403
    assert order_status(shop, order) == "confirmed"
    assert provider_requests(httpserver) == []


def test_outside_the_window_the_notice_uses_the_template(shop, httpserver):
    meta_ok(httpserver)
    shop.config["WHATSAPP_TEMPLATE_ORDER_UPDATE"] = "order_update"
    order = add_order(shop, add_shop(shop, last_inbound=timedelta(hours=30)))
    assert _move(signed_in(shop, "admin"), order, "dispatched").status_code == 302
    (notice,) = _notices(shop, order)
    assert notice.status == "sent"
    (request,) = provider_requests(httpserver)
    sent = request.get_json()
    assert sent["type"] == "template" and sent["template"]["name"] == "order_update"


def test_outside_the_window_without_a_template_the_notice_waits_as_needs_template(shop, httpserver):
    order = add_order(shop, add_shop(shop, last_inbound=timedelta(hours=30)))
    admin = signed_in(shop, "admin")
    assert _move(admin, order, "dispatched").status_code == 302
    assert order_status(shop, order) == "dispatched"
    (notice,) = _notices(shop, order)
    assert notice.status == "needs_template"
    assert provider_requests(httpserver) == []
    page = admin.get(f"/dashboard/orders/{order}").get_data(as_text=True)
    assert "needs template" in page and "the notice waits as needs_template" in page


def test_inside_the_window_the_notice_is_free_form_text(shop, httpserver):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop, last_inbound=timedelta(hours=23)))
    assert _move(signed_in(shop, "admin"), order, "dispatched").status_code == 302
    (request,) = provider_requests(httpserver)
    sent = request.get_json()
    assert sent["type"] == "text" and f"#{order}" in sent["text"]["body"]
