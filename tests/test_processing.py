"""process_message and the senders: orders, replies, exactly-once, failures (Huey immediate).

A pytest-httpserver on loopback stands in for Meta's Cloud API and Twilio's REST API.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql as pgsql
from sqlalchemy import func, select, update
from werkzeug import Response

from khaacho import statements
from khaacho.extensions import db
from khaacho.models import Order, OutboundMessage, WebhookMessage, utcnow
from khaacho.processing import retry, sweep, worker
from khaacho.tasks import process_message
from tests.conftest import PG_ADMIN_URL, SECRETS
from tests.processing_support import (
    META_PATH,
    ORDER_TEXT,
    PHONE,
    TWILIO_PATH,
    add_message,
    load,
    meta_ok,
    open_shop,
    provider_requests,
    twilio_ok,
)

# --- orders and replies -------------------------------------------------------------------

def test_meta_order_is_priced_from_the_catalog_and_confirmed_once(shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT)

    process_message(message_id)

    message, order, reply = load(shop, message_id)
    assert message.status == "completed" and message.processed_at is not None and message.attempts == 1
    assert order.total == Decimal("1900.00")  # 10 kg sugar at 110 + 5 kg dal at 160
    assert sorted((item.quantity, item.unit_price) for item in order.items) == [
        (Decimal("5"), Decimal("160.00")), (Decimal("10"), Decimal("110.00"))]
    assert reply.status == "sent" and reply.provider_message_id == "wamid.REPLY1" and reply.attempts == 1
    [request] = provider_requests(httpserver)
    assert request.headers["Authorization"] == f"Bearer {SECRETS['WHATSAPP_ACCESS_TOKEN']}"
    sent = request.get_json()
    assert sent["to"] == "9779841234567" and sent["type"] == "interactive"
    assert sent["messaging_product"] == "whatsapp"
    assert sent["context"] == {"message_id": message.message_id}
    assert order.status == "pending" and order.version == 1
    buttons = sent["interactive"]["action"]["buttons"]
    assert [b["reply"]["id"] for b in buttons] == [f"order:{order.id}:v1:{action}"
                                                   for action in ("confirm", "change", "cancel")]
    assert [b["reply"]["title"].split(" ")[0] for b in buttons] == ["Confirm", "Change", "Cancel"]
    body = sent["interactive"]["body"]["text"]
    assert body == reply.body and reply.kind == "confirmation" and reply.order_id == order.id
    assert f"Order #{order.id}" in body
    assert "Sugar: 10 kg × NPR 110.00 = NPR 1,100.00" in body
    assert "5 kg × NPR 160.00 = NPR 800.00" in body
    assert "Total / Jamma: NPR 1,900.00" in body


def test_twilio_order_is_confirmed_through_twilio(shop, httpserver):
    twilio_ok(httpserver)
    message_id = add_message(shop, "चामल २५ केजी", source="twilio")

    process_message(message_id)

    message, order, reply = load(shop, message_id)
    assert message.status == "completed"
    assert order.total == Decimal("2125.00")  # 25 kg mansuli rice at 85
    assert reply.provider == "twilio" and reply.provider_message_id == "SM00000000000000000000000000000001"
    [request] = provider_requests(httpserver)
    assert request.authorization.username == SECRETS["TWILIO_ACCOUNT_SID"]
    assert request.authorization.password == SECRETS["TWILIO_AUTH_TOKEN"]
    assert request.form["From"] == SECRETS["TWILIO_WHATSAPP_NUMBER"]
    assert request.form["To"] == f"whatsapp:{PHONE}"
    assert "Mansuli Rice: 25 kg × NPR 85.00 = NPR 2,125.00" in request.form["Body"]
    assert "पक्का गर्न १, बदल्न २, रद्द गर्न ३" in request.form["Body"]  # Devanagari in, Devanagari out


def test_lines_that_cannot_be_priced_are_left_out_and_listed(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, "chini 2 kg\nunicorn tears 3 bottle\n2 bottle chini")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    assert order.total == Decimal("220.00")  # only the sugar priced per kg counts
    assert len(order.items) == 1
    assert "Not found, left out" in reply.body
    assert "• unicorn tears 3 bottle" in reply.body and "• 2 bottle chini" in reply.body
    assert "Total / Jamma: NPR 220.00" in reply.body


def test_a_line_that_fits_several_products_is_asked_about_not_guessed(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, "10 kg chini\n5 kg dal")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    assert order.total == Decimal("1100.00")  # the dal is not priced as whichever dal comes first
    assert [item.product_id is None for item in order.items] == [False, True]
    assert reply.kind == "clarification" and 'which one do you mean by "5 kg dal"' in reply.body
    titles = [row[1] for row in reply.payload["list"]["rows"]]
    assert "Red Lentils (Musuro Dal)" in titles and "Mung Dal" in titles and titles[-1] == "None of these"


def test_a_message_of_only_unclear_lines_waits_pending_for_the_choice(sqlite_shop, httpserver):
    twilio_ok(httpserver)
    message_id = add_message(sqlite_shop, "oil 5 litre", source="twilio")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    assert order.status == "pending" and order.total == 0 and order.items[0].product_id is None
    assert 'which one do you mean by "oil 5 litre"' in reply.body
    assert "1. Mustard Oil (NPR 330.00 / litre)" in reply.body
    assert "0. None of these" in reply.body


def test_a_long_order_is_shortened_to_the_twilio_limit_and_keeps_its_total(sqlite_shop, httpserver):
    twilio_ok(httpserver)
    message_id = add_message(sqlite_shop, "\n".join(["chini 1 kg"] * 60), source="twilio")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    body = provider_requests(httpserver)[0].form["Body"]
    assert body == reply.body and len(body) <= 1600
    assert "Total / Jamma: NPR 6,600.00" in body and body.endswith("(shortened / chhoto gariyo)")
    assert order.total == 6600 and len(order.items) == 60


@pytest.mark.parametrize("text", ["namaste, aaja pasal kati baje khulcha?", "hello there", None])
def test_a_message_without_items_gets_the_how_to_order_help(sqlite_shop, httpserver, text):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, text)

    process_message(message_id)

    message, order, reply = load(sqlite_shop, message_id)
    assert message.status == "completed" and order is None
    assert "To order, send one item per line" in reply.body  # English
    assert "Order garna ek line ma ek saman" in reply.body  # romanized Nepali
    assert "chini 5 kg" in reply.body


def test_nothing_from_the_catalog_makes_no_order_and_says_so(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, "unicorn tears 3 bottle")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    assert order is None
    assert "could not find these in our catalog" in reply.body and '"unicorn tears 3 bottle"' in reply.body


def test_a_sender_known_only_by_user_id_is_replied_to_through_recipient(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, ORDER_TEXT, phone=None, sender="NP.13491208655302741918")

    process_message(message_id)

    sent = provider_requests(httpserver)[0].get_json()
    assert sent["recipient"] == "NP.13491208655302741918" and "to" not in sent
    assert load(sqlite_shop, message_id)[0].status == "completed"


def test_a_reaction_is_ignored_without_a_reply(sqlite_shop, httpserver):
    message_id = add_message(sqlite_shop, None, message_type="reaction")

    process_message(message_id)

    message, order, reply = load(sqlite_shop, message_id)
    assert message.status == "ignored" and order is None and reply is None
    assert provider_requests(httpserver) == []


# --- exactly once -------------------------------------------------------------------------

def test_running_the_task_twice_makes_one_order_and_one_reply(shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT)

    process_message(message_id)
    process_message(message_id)

    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
    assert len(provider_requests(httpserver)) == 1


def test_claim_refuses_a_message_already_processing(sqlite_shop, httpserver):
    message_id = add_message(sqlite_shop, ORDER_TEXT, status="processing", attempts=1)

    with sqlite_shop.app_context():
        assert worker.claim(message_id) is None
    process_message(message_id)

    message, order, _ = load(sqlite_shop, message_id)
    assert message.status == "processing" and message.attempts == 1 and order is None
    assert provider_requests(httpserver) == []


def test_a_worker_killed_mid_send_is_not_followed_by_a_second_reply(shop, httpserver):
    """The reply was recorded as sending and the worker died: the sweep re-runs it, nothing is resent."""
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT)
    process_message(message_id)
    with shop.app_context():  # rewind to the moment between the provider call and the commit
        db.session.execute(update(OutboundMessage).values(status="sending", provider_message_id=None))
        db.session.execute(update(WebhookMessage).values(status="processing",
                                                         updated_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        for batch in sweep.requeue_stuck():
            assert batch == [message_id]
            process_message(message_id)

    message, _, reply = load(shop, message_id)
    assert message.status == "completed" and "not sent again" in message.error_message
    assert reply.status == "unknown"
    assert len(provider_requests(httpserver)) == 1
    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_an_order_left_without_its_reply_is_reused_not_doubled(shop, httpserver):
    """A first try meets an order that already exists: the unique key fails it, the retry reuses the order."""
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT)
    with shop.app_context():
        db.session.add(Order(webhook_message_id=message_id, phone_number=PHONE, total=Decimal("42.00")))
        db.session.commit()

    process_message(message_id)
    failed, _, _ = load(shop, message_id)
    process_message(message_id)

    assert failed.status == "failed" and "IntegrityError" in failed.error_message and failed.attempts == 1
    message, order, reply = load(shop, message_id)
    assert message.status == "completed" and message.attempts == 2
    assert order.total == Decimal("42.00") and f"Order #{order.id}" in reply.body
    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert len(provider_requests(httpserver)) == 1


def test_a_connection_the_server_dropped_costs_one_attempt_and_is_not_used_again(pg_app, httpserver):
    """The worker's pooled connection is terminated between two messages (a restart, a failover):
    the next message's attempt fails as a retryable database error, and its retry completes on a
    new connection."""
    shop = open_shop(pg_app, httpserver)
    meta_ok(httpserver)
    process_message(add_message(shop, ORDER_TEXT))  # the pool keeps the connection it used
    message_id = add_message(shop, ORDER_TEXT, phone="+9779800000002")
    with shop.app_context():
        database = db.engine.url.database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (database,))

    process_message(message_id)
    failed, _, _ = load(shop, message_id)
    process_message(message_id)

    assert failed.status == "failed" and failed.error_message.startswith("OperationalError: ")
    assert failed.attempts == 1
    message, order, reply = load(shop, message_id)
    assert message.status == "completed" and order is not None and reply.status == "sent"
    assert len(provider_requests(httpserver)) == 2


def _rows_read(node: dict) -> int:
    """Rows a plan's scans of ``webhook_messages`` read: returned upward plus removed by their filter."""
    own = 0
    if node.get("Relation Name") == "webhook_messages" and "Scan" in node["Node Type"]:
        own = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


_SQL_TYPES = {int: "bigint", str: "text", type(None): "text", datetime: "timestamptz"}


def _explain_generic(conn: psycopg.Connection, statement, params: dict) -> dict:
    """EXPLAIN ANALYZE of the statement prepared as the worker's driver runs it (a connection that
    ran it five times keeps it prepared), in the generic plan PostgreSQL makes without the values."""
    compiled = statements.compile_positional(statement, tuple(params))
    values = [params[key] if key in params else compiled.fixed[key] for key in compiled.names]
    numbered = iter(range(1, len(values) + 1))
    types = ", ".join(_SQL_TYPES[type(value)] for value in values)
    sql = re.sub("%s", lambda _: f"${next(numbered)}", compiled.sql)
    conn.execute(f"PREPARE explained ({types}) AS {sql}")
    arguments = pgsql.SQL(", ").join(pgsql.Literal(value) for value in values)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            explain = pgsql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE explained ({})").format(arguments)
            [[plan]] = conn.execute(explain).fetchall()
    finally:
        conn.execute("DEALLOCATE explained")
    return plan[0]["Plan"]


_MESSAGES = """
    INSERT INTO webhook_messages (message_id, webhook_source, phone_number, sender_id, message_type,
        message_text, status, duplicate_count, message_timestamp, first_received_at, attempts, error_count,
        relayed_at, updated_at, created_at)
    SELECT 'wamid.' || %(prefix)s::text || g, 'whatsapp', s.phone, s.phone, 'text', 'chini 5 kg',
        %(status)s::text, 0, now(), now(), 1, 0, now(), now(), now()
    FROM generate_series(1, %(count)s::int) g,
        LATERAL (SELECT coalesce(%(sender)s::text, '+97797' || lpad(g::text, 8, '0')) AS phone) s"""


def test_a_shops_long_history_is_not_read_again_for_each_of_its_messages(pg_app):
    """The claim and the finish look for the sender's unfinished and waiting messages. Their
    prepared plans (the generic ones PostgreSQL keeps for a busy connection) read a few rows, not
    the 2,000 messages the shop sent before (with the statuses as parameters, the finish read them
    all: the partial index of unfinished messages was out of the generic plan's reach)."""
    shop = "+9779800000001"
    params = {"_id": 4001, "_attempt": 1, "_status": "completed", "_now": utcnow(), "_note": None,
              "_context": None, "_sender": shop, "_outbound_id": 1, "_provider_id": "wamid.OUT"}
    with pg_app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as conn:
            batches = (("OTHER", None, "completed", 2000),  # one message each of 2,000 other shops
                       ("OLD", shop, "completed", 2000), ("NEW", shop, "queued", 1))
            for prefix, sender, status, count in batches:
                conn.execute(_MESSAGES, {"prefix": prefix, "sender": sender, "status": status,
                                         "count": count})
            conn.execute("ANALYZE webhook_messages")
            read = {"CLAIM_IN_TURN": _rows_read(_explain_generic(conn, worker.CLAIM_IN_TURN, params))}
            conn.execute("UPDATE webhook_messages SET status = 'processing' WHERE id = 4001")
            for name in ("FINISH_SENT", "NEXT_WAITING"):
                read[name] = _rows_read(_explain_generic(conn, getattr(worker, name), params))
    assert max(read.values()) < 10, read


# --- failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("source,status,error,reason", [
    ("whatsapp", 400, {"error": {"code": 131047, "message": "Re-engagement message"}}, "24 hours"),
    ("whatsapp", 401, {"error": {"code": 190, "message": "Error validating access token"}}, "access token"),
    ("whatsapp", 400, {"error": {"code": 131026, "message": "Message Undeliverable."}}, "undeliverable"),
    ("twilio", 400, {"code": 63016, "message": "Failed to send freeform message", "status": 400}, "24-hour"),
    ("twilio", 401, {"code": 20003, "message": "Authenticate", "status": 401}, "authentication"),
])
def test_a_permanent_provider_error_makes_the_message_dead_with_the_reason(
        sqlite_shop, httpserver, source, status, error, reason):
    path = META_PATH if source == "whatsapp" else TWILIO_PATH
    httpserver.expect_request(path, method="POST").respond_with_json(error, status=status)
    message_id = add_message(sqlite_shop, ORDER_TEXT, source=source)

    process_message(message_id)

    message, order, reply = load(sqlite_shop, message_id)
    assert message.status == "dead" and reason in message.error_message
    assert str(error.get("code") or error["error"]["code"]) in message.error_message
    assert message.error_count == 1 and message.next_attempt_at is None
    assert order is not None and reply.status == "failed" and reason in reply.last_error
    assert len(provider_requests(httpserver)) == 1


@pytest.mark.parametrize("source,status,error", [
    ("whatsapp", 400, {"error": {"code": 130429, "message": "Rate limit hit"}}),
    ("whatsapp", 400, {"error": {"code": 131056, "message": "Pair rate limit hit"}}),
    ("whatsapp", 500, {"error": {"code": 131000, "message": "Something went wrong"}}),
    ("whatsapp", 503, {}),
    ("twilio", 429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
    ("twilio", 502, {}),
])
def test_a_retryable_provider_error_makes_the_message_failed_with_a_retry_due(
        sqlite_shop, httpserver, source, status, error):
    path = META_PATH if source == "whatsapp" else TWILIO_PATH
    httpserver.expect_request(path, method="POST").respond_with_json(error, status=status)
    message_id = add_message(sqlite_shop, ORDER_TEXT, source=source)

    process_message(message_id)

    message, _, reply = load(sqlite_shop, message_id)
    assert message.status == "failed" and message.attempts == 1 and message.error_count == 1
    assert f"HTTP {status}" in message.error_message
    assert message.next_attempt_at is not None
    assert reply.status == "pending" and reply.last_error == message.error_message


def test_an_unreachable_provider_is_retried(sqlite_shop):
    sqlite_shop.config["WHATSAPP_API_URL"] = "http://127.0.0.1:9"  # discard port: connection refused
    message_id = add_message(sqlite_shop, ORDER_TEXT)

    process_message(message_id)

    message, _, _ = load(sqlite_shop, message_id)
    assert message.status == "failed" and "unreachable" in message.error_message


def test_retries_resend_once_and_give_up_as_dead_after_the_limit(sqlite_shop, httpserver):
    sqlite_shop.config["TASK_MAX_RETRIES"] = 2
    httpserver.expect_request(META_PATH).respond_with_response(Response("down", status=503))
    message_id = add_message(sqlite_shop, ORDER_TEXT)

    for attempt in (1, 2, 3):  # immediate mode does not run scheduled retries: run them by hand
        process_message(message_id)
        message, _, reply = load(sqlite_shop, message_id)
        assert message.attempts == attempt and message.error_count == attempt and reply.attempts == attempt

    assert message.status == "dead" and message.error_message.startswith("gave up after 3 attempts")
    assert reply.status == "pending"  # never delivered: a replay sends it
    assert len(provider_requests(httpserver)) == 3
    with sqlite_shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_backoff_doubles_from_the_base_with_bounded_jitter():
    for retry_number, low in ((1, 30), (2, 60), (3, 120), (5, 480)):
        delays = [retry.backoff_delay(retry_number, 30) for _ in range(50)]
        assert all(low <= delay <= low * 1.25 for delay in delays)
        assert len(set(delays)) > 1
