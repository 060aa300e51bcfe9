"""The dashboard: who may see and do what, fragments, filters, message detail and replay."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug import Response

from khaacho import events
from khaacho.dashboard.simulate import TrafficBuilder, kinds
from khaacho.extensions import db
from khaacho.models import REPLAYABLE_STATUSES, Order, OrderItem, OutboundMessage, WebhookMessage
from khaacho.webhooks import meta, twilio
from tests.conftest import SECRETS
from tests.test_auth import login, page_token

PARTIALS = ("health", "processing", "security", "performance", "messages")
PAGES = ["/dashboard", "/dashboard/messages/1", "/dashboard/replay?status=dead",
         *(f"/dashboard/partials/{name}" for name in PARTIALS)]


def add_message(app, n: int, status: str = "completed", source: str = "whatsapp",
                phone: str = "+9779841234567", text: str = "5 kg chini",
                age: timedelta = timedelta(minutes=5), **fields) -> int:
    with app.app_context():
        at = datetime.now(UTC) - age
        message = WebhookMessage(
            message_id=f"wamid.T{n}", webhook_source=source, phone_number=phone, sender_id=phone,
            message_text=text, payload={"id": f"wamid.T{n}", "text": {"body": text}}, status=status,
            first_received_at=at, created_at=at, updated_at=at, **fields)
        db.session.add(message)
        db.session.commit()
        return message.id


@pytest.fixture
def admin(client, make_user):
    make_user("admin@khaacho.local", role="admin")
    login(client, "admin@khaacho.local")
    return client


@pytest.fixture
def viewer(client, make_user):
    make_user("viewer@khaacho.local", role="viewer")
    login(client, "viewer@khaacho.local")
    return client


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_htmx_requests_of_an_expired_session_redirect_the_whole_page(client):
    response = client.get("/dashboard/partials/health", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


@pytest.mark.parametrize("method,path", [
    ("post", "/dashboard/messages/1/replay"), ("post", "/dashboard/replay?status=dead")])
def test_actions_need_a_login(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code in (302, 400)  # to /login, or refused for the missing CSRF token
    assert response.status_code == 400 or response.headers["Location"].startswith("/login")


def test_stats_api_answers_anonymous_callers_with_json_401(client):
    response = client.get("/api/v1/whatsapp-hardened/stats")
    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": "authentication required"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_dashboard_page_has_every_section_and_no_inline_script(app, admin):
    add_message(app, 1, text="चामल २५ केजी")
    html = admin.get("/dashboard").get_data(as_text=True)
    for section in PARTIALS:
        assert f'id="{section}"' in html
    assert "चामल २५ केजी" in html
    assert 'src="/static/vendor/htmx.min.js"' in html
    assert '"includeIndicatorStyles": false' in html
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "style=" not in html
    assert "<svg" in html and 'role="img"' in html


@pytest.mark.parametrize("name", PARTIALS)
def test_every_partial_is_a_fragment_that_carries_the_one_poller(app, viewer, name):
    add_message(app, 1)
    response = viewer.get(f"/dashboard/partials/{name}?hours=6&source=whatsapp")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and "<body" not in html
    # Sections no longer poll one by one: the page's single poller comes along with the filters.
    assert html.count('hx-trigger="every 5s') == 1 and 'id="live"' in html
    assert "/dashboard/live?" in html and "hours=6" in html and "source=whatsapp" in html


def test_live_view_refreshes_every_section_in_one_response(app, viewer):
    add_message(app, 1)
    page = viewer.get("/dashboard?hours=6").get_data(as_text=True)
    assert page.count('hx-trigger="every 5s') == 1 and "/dashboard/live?" in page
    html = viewer.get("/dashboard/live?hours=6").get_data(as_text=True)
    for section in (*PARTIALS, "operations"):
        assert f'id="{section}"' in html
    assert html.count('hx-swap-oob="true"') == len(PARTIALS) + 1


def test_live_view_needs_a_login(client):
    assert client.get("/dashboard/live").status_code == 302


def test_unknown_partial_is_404(viewer):
    assert viewer.get("/dashboard/partials/secrets").status_code == 404


def test_static_assets_are_served(client):
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_messages_filter_by_status_source_phone_and_text(app, viewer):
    add_message(app, 1, text="10 kg chini ra 5 kg dal")
    add_message(app, 2, status="dead", text="चिया पत्ती २ प्याकेट")
    add_message(app, 3, source="twilio", phone="+9779857654321", text="Noodles x 30")
    add_message(app, 4, text="old order", age=timedelta(hours=30))

    def shown(query: str) -> set[str]:
        html = viewer.get(f"/dashboard/partials/messages?{query}").get_data(as_text=True)
        return {text for text in ("chini", "चिया", "Noodles", "old order") if text in html}

    assert shown("") == {"chini", "चिया", "Noodles"}
    assert shown("hours=48") == {"chini", "चिया", "Noodles", "old order"}
    assert shown("status=dead") == {"चिया"}
    assert shown("source=twilio") == {"Noodles"}
    assert shown("phone=9857654321") == {"Noodles"}
    assert shown("phone=%2B977-985-765-4321") == {"Noodles"}
    assert shown("q=CHINI") == {"chini"}
    assert shown("q=चिया") == {"चिया"}
    assert shown("q=100%25") == set()
    assert shown("status=bogus&source=bogus&hours=abc&page=-3") == {"chini", "चिया", "Noodles"}


def test_messages_are_paged_newest_first(app, viewer):
    for n in range(30):
        add_message(app, n, text=f"order number {n:02d}", age=timedelta(minutes=60 - n))
    first = viewer.get("/dashboard/partials/messages").get_data(as_text=True)
    second = viewer.get("/dashboard/partials/messages?page=2").get_data(as_text=True)
    assert "30</strong> messages" in first and "page 1 of 2" in first
    assert first.index("order number 29") < first.index("order number 05")
    assert "order number 04" not in first
    assert "order number 04" in second and "order number 05" not in second
    assert "page=2" in second  # the poll keeps the page


def test_message_detail_shows_payload_errors_order_and_reply(app, viewer):
    message_id = add_message(app, 1, status="completed", text="5 kg chini", attempts=2, error_count=1,
                             error_message="Meta error 131000 (HTTP 500): try again")
    with app.app_context():
        order = Order(webhook_message_id=message_id, phone_number="+9779841234567", total=Decimal("550.00"),
                      items=[OrderItem(quantity=Decimal("5"), unit="kg", unit_price=Decimal("110"),
                                       raw_text="5 kg chini")])
        db.session.add_all([order, OutboundMessage(
            webhook_message_id=message_id, provider="whatsapp", recipient="+9779841234567",
            body="Order received: Sugar 5 kg", status="sent", delivery_status="failed",
            delivery_error="131047 Re-engagement message", attempts=1)])
        db.session.commit()
    html = viewer.get(f"/dashboard/messages/{message_id}").get_data(as_text=True)
    assert "wamid.T1" in html and '"body": "5 kg chini"' in html  # the payload
    assert "Meta error 131000" in html
    assert "NPR 550.00" in html and "5 kg" in html
    assert "Order received: Sugar 5 kg" in html and "131047 Re-engagement message" in html
    assert "Replay</button>" not in html  # completed, and a viewer
    assert viewer.get("/dashboard/messages/999999").status_code == 404


def test_viewer_may_look_but_not_replay(app, viewer):
    message_id = add_message(app, 1, status="dead")
    assert "Replay</button>" not in viewer.get(f"/dashboard/messages/{message_id}").get_data(as_text=True)
    token = page_token(viewer)
    replay = viewer.post(f"/dashboard/messages/{message_id}/replay", data={"csrf_token": token})
    assert replay.status_code == 403
    assert viewer.get("/dashboard/replay?status=dead").status_code == 403
    assert viewer.post("/dashboard/replay", data={"status": "dead", "csrf_token": token}).status_code == 403
    assert "Replay these" not in viewer.get("/dashboard/partials/messages?status=dead").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(WebhookMessage, message_id).status == "dead"


def test_viewer_gets_403_json_from_the_stats_api(viewer):
    response = viewer.get("/api/v1/whatsapp-hardened/stats")
    assert response.status_code == 403 and response.get_json()["success"] is False


@pytest.fixture
def meta_api(app, httpserver):
    """Meta's Graph API on loopback, accepting every reply."""
    httpserver.expect_request(re.compile(r"/v21.0/\d+/messages"), method="POST").respond_with_json(
        {"messaging_product": "whatsapp", "messages": [{"id": "wamid.REPLY1"}]})
    app.config["WHATSAPP_API_URL"] = httpserver.url_for("/v21.0").rstrip("/")
    return httpserver


def test_admin_replays_a_dead_message_which_is_then_processed(app, admin, meta_api):
    from khaacho.demo import DEMO_CATALOG
    from khaacho.orders.catalog import import_catalog

    with app.app_context():
        import_catalog(DEMO_CATALOG)
    message_id = add_message(app, 1, status="dead", attempts=6, error_count=6, error_message="boom")
    page = admin.get(f"/dashboard/messages/{message_id}").get_data(as_text=True)
    assert "Replay</button>" in page and "data-confirm=" in page
    assert admin.post(f"/dashboard/messages/{message_id}/replay").status_code == 400  # no CSRF token
    with app.app_context():
        assert db.session.get(WebhookMessage, message_id).status == "dead"

    response = admin.post(f"/dashboard/messages/{message_id}/replay", data={"csrf_token": page_token(admin)},
                          follow_redirects=True)
    assert "Re-queued 1 message" in response.get_data(as_text=True)
    with app.app_context():
        message = db.session.get(WebhookMessage, message_id)
        assert message.status == "completed"
        assert db.session.scalar(select(Order).where(Order.webhook_message_id == message_id)) is not None
    assert len(meta_api.log) == 1


def test_replaying_a_completed_message_says_why_it_was_left_alone(app, admin):
    message_id = add_message(app, 1, status="completed")
    response = admin.post(f"/dashboard/messages/{message_id}/replay", data={"csrf_token": page_token(admin)},
                          follow_redirects=True)
    assert "left alone: status is completed" in response.get_data(as_text=True)


def test_bulk_replay_shows_the_count_then_replays_the_filtered_set(app, admin, meta_api):
    dead = [add_message(app, n, status="dead", phone="+9779841234567") for n in range(3)]
    other_phone = add_message(app, 10, status="dead", phone="+9779857654321")
    failed = add_message(app, 11, status="failed")
    listing = admin.get("/dashboard/partials/messages?status=dead&phone=9841234567").get_data(as_text=True)
    assert "Replay these 3" in listing

    confirm = admin.get("/dashboard/replay?status=dead&phone=9841234567").get_data(as_text=True)
    assert "Replay 3 dead messages?" in confirm
    response = admin.post("/dashboard/replay", data={
        "status": "dead", "phone": "9841234567", "hours": "24", "csrf_token": page_token(admin)},
        follow_redirects=True)
    assert "Re-queued 3 messages" in response.get_data(as_text=True)
    with app.app_context():
        statuses = {i: db.session.get(WebhookMessage, i).status for i in [*dead, other_phone, failed]}
    assert [statuses[i] for i in dead] == ["completed"] * 3
    assert statuses[other_phone] == "dead" and statuses[failed] == "failed"


def test_bulk_replay_refuses_statuses_replay_cannot_fix(admin):
    response = admin.get("/dashboard/replay?status=completed", follow_redirects=True)
    assert "Bulk replay needs a status filter" in response.get_data(as_text=True)


def test_bearer_token_from_the_cli_reads_the_stats(app, runner, make_user):
    make_user("admin@khaacho.local", role="admin")
    make_user("viewer@khaacho.local", role="viewer")
    with app.app_context():
        tokens = [runner.invoke(args=["users", "token", email]).output.strip().splitlines()[-1]
                  for email in ("admin@khaacho.local", "viewer@khaacho.local")]
    token, viewer_token = tokens
    client = app.test_client()
    url = "/api/v1/whatsapp-hardened/stats?source=whatsapp&hours=24"
    ok = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.get_json()["success"] is True
    assert client.get(url, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Bearer {viewer_token}"}).status_code == 403
    assert client.get("/dashboard", headers={"Authorization": f"Bearer {token}"}).status_code == 302


def test_simulate_posts_signed_realistic_traffic(app, runner, httpserver):
    received = []

    def record(request):
        received.append((request.path, request.get_data(), dict(request.headers), request.form.to_dict()))
        return Response("ok")

    httpserver.expect_request(re.compile(".*"), method="POST").respond_with_handler(record)
    base = httpserver.url_for("").rstrip("/")
    result = runner.invoke(args=["webhooks", "simulate", "--url", base, "--count", "40", "--rate", "50",
                                 "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert len(received) == 40

    meta = [(body, headers) for path, body, headers, _ in received
            if path.endswith("/whatsapp-hardened/webhook")]
    twilio = [(headers, form) for path, _, headers, form in received if path.endswith("/twilio/webhook")]
    secret = SECRETS["WHATSAPP_APP_SECRET"].encode()
    valid = [hmac.compare_digest(h["X-Hub-Signature-256"], "sha256=" + hmac.new(secret, b, hashlib.sha256)
                                 .hexdigest()) for b, h in meta]
    forged = [line for line in result.output.splitlines() if re.match(r"\s*\d+ forged ", line)]
    assert forged and valid.count(False) == len(forged)
    validator = RequestValidator(SECRETS["TWILIO_AUTH_TOKEN"])
    assert twilio and all(validator.validate(base + "/api/v1/whatsapp-hardened/twilio/webhook", form,
                                             h["X-Twilio-Signature"]) for h, form in twilio)
    assert any("MessageStatus" in form for _, form in twilio)

    messages = [m for body, _ in meta for c in json.loads(body)["entry"][0]["changes"]
                for m in c["value"].get("messages", [])]
    ids = [m["id"] for m in messages]
    assert len(ids) > len(set(ids))  # redeliveries
    senders = [m.get("from") for m in messages]
    assert max(senders.count(s) for s in set(senders)) >= 10  # the burst
    assert any(re.search("[\u0900-\u097f]", m.get("text", {}).get("body", "")) for m in messages)
    assert "forged" in result.output and "sent 40 requests" in result.output


def test_simulate_sends_every_kind_of_message_in_a_default_run():
    """``make simulate`` sends 60 requests: every message kind of both providers is among them."""
    builder = TrafficBuilder("http://127.0.0.1:8000", "secret", "token", "whatsapp:+14155238886", seed=3)
    seen = set()
    for kind in kinds(60):
        delivery = builder.build(kind)
        if delivery.kind == "forged":
            continue
        if delivery.path.endswith("/twilio/webhook"):
            found = twilio.parse(dict(parse_qsl(delivery.body.decode())))
        else:
            found = meta.parse(delivery.body)
        assert found.dropped == []
        seen |= {(m.message_type, m.group_id is not None, bool(m.errors)) for m in found.messages}
    assert {kind for kind, _, _ in seen} == set(events.KINDS) - {events.VIDEO, events.DOCUMENT}
    assert ("text", True, False) in seen and ("unsupported", False, True) in seen  # a group, an error


def test_simulate_is_bounded(runner):
    assert runner.invoke(args=["webhooks", "simulate", "--count", "5000"]).exit_code == 2
    assert runner.invoke(args=["webhooks", "simulate", "--rate", "500"]).exit_code == 2
    assert runner.invoke(args=["webhooks", "simulate", "--url", "ftp://x"]).exit_code == 2


@pytest.mark.parametrize("status", REPLAYABLE_STATUSES)
def test_bulk_replay_offers_every_status_the_cli_replays(app, admin, runner, status):
    add_message(app, 1, status=status)
    confirm = admin.get(f"/dashboard/replay?status={status}").get_data(as_text=True)
    assert f"Replay 1 {status.replace('_', ' ')} message?" in confirm
    cli_help = runner.invoke(args=["webhooks", "replay", "--help"]).output
    assert status in cli_help
