"""process_message, the senders, retries, sweep, replay and cleanup, with Huey in immediate mode.

A pytest-httpserver on loopback stands in for Meta's Cloud API and Twilio's REST API.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from werkzeug import Response

from khaacho.demo import DEMO_CATALOG
from khaacho.extensions import db
from khaacho.models import (
    Order,
    OutboundMessage,
    WebhookMessage,
    WebhookPerformanceMetric,
    WebhookRateLimit,
    WebhookSignatureLog,
    utcnow,
)
from khaacho.orders.catalog import import_catalog
from khaacho.processing import cleanup, retry, sweep, worker
from khaacho.tasks import process_message
from tests.conftest import SECRETS

PHONE = "+9779841234567"
META_PATH = f"/{SECRETS['WHATSAPP_PHONE_NUMBER_ID']}/messages"
TWILIO_PATH = f"/2010-04-01/Accounts/{SECRETS['TWILIO_ACCOUNT_SID']}/Messages.json"
ORDER_TEXT = "10 kg chini ra 5 kg dal"


@pytest.fixture
def shop(any_app, httpserver):
    """The app on each backend, the demo catalog loaded and both providers on a loopback server."""
    base = httpserver.url_for("").rstrip("/")
    any_app.config.update(WHATSAPP_API_URL=base, TWILIO_API_URL=base)
    with any_app.app_context():
        import_catalog(DEMO_CATALOG)
    return any_app


@pytest.fixture
def sqlite_shop(app, httpserver):
    """As ``shop``, on SQLite only, for the behaviour that does not depend on the database."""
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
    assert sent["to"] == "9779841234567" and sent["type"] == "text"
    assert sent["messaging_product"] == "whatsapp"
    assert sent["context"] == {"message_id": message.message_id}
    body = sent["text"]["body"]
    assert body == reply.body
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


def test_unmatched_lines_are_listed_with_a_request_to_clarify(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, "chini 2 kg\nunicorn tears 3 bottle\n2 bottle chini")

    process_message(message_id)

    _, order, reply = load(sqlite_shop, message_id)
    assert order.total == Decimal("220.00")  # only the sugar priced per kg counts
    assert len(order.items) == 3
    assert 'Please check these' in reply.body
    assert '"unicorn tears 3 bottle"' in reply.body
    assert '"2 bottle chini" (Sugar is sold per kg' in reply.body
    assert "Total / Jamma: NPR 220.00" in reply.body


@pytest.mark.parametrize("text", ["namaste, aaja pasal kati baje khulcha?", "what is the price of sugar?",
                                  None])
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


# --- replay -------------------------------------------------------------------------------

def test_replaying_a_dead_message_completes_it_with_one_order_and_one_reply(shop, httpserver):
    httpserver.expect_oneshot_request(META_PATH).respond_with_json(
        {"error": {"code": 190, "message": "token expired"}}, status=401)
    message_id = add_message(shop, ORDER_TEXT)
    process_message(message_id)
    assert load(shop, message_id)[0].status == "dead"
    meta_ok(httpserver)

    result = shop.test_cli_runner().invoke(args=["webhooks", "replay", str(message_id)])
    again = shop.test_cli_runner().invoke(args=["webhooks", "replay", str(message_id)])

    assert result.exit_code == 0, result.output
    assert f"{message_id}: dead -> queued" in result.output
    assert f"{message_id}: left alone: status is completed" in again.output
    message, order, reply = load(shop, message_id)
    assert message.status == "completed" and reply.status == "sent" and reply.attempts == 2
    assert len(provider_requests(httpserver)) == 2  # the refused send and the replayed one
    with shop.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_replay_accepts_the_provider_message_id_and_reports_unknown_ids(sqlite_shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, ORDER_TEXT, status="rate_limited")
    provider_id = load(sqlite_shop, message_id)[0].message_id

    result = sqlite_shop.test_cli_runner().invoke(args=["webhooks", "replay", provider_id, "999"])

    assert result.exit_code == 0, result.output
    assert f"{provider_id} (id {message_id}): rate_limited -> queued" in result.output
    assert "999: left alone: no such message" in result.output
    assert "1 re-queued, 1 left alone" in result.output
    assert load(sqlite_shop, message_id)[0].status == "completed"


def test_bulk_replay_takes_only_the_status_source_and_period_asked_for(sqlite_shop, httpserver):
    twilio_ok(httpserver)
    wanted = add_message(sqlite_shop, ORDER_TEXT, source="twilio", status="dead", age=timedelta(hours=2))
    too_old = add_message(sqlite_shop, ORDER_TEXT, source="twilio", status="dead", age=timedelta(hours=30))
    other_source = add_message(sqlite_shop, ORDER_TEXT, source="whatsapp", status="dead")
    other_status = add_message(sqlite_shop, ORDER_TEXT, source="twilio", status="stale")

    result = sqlite_shop.test_cli_runner().invoke(
        args=["webhooks", "replay", "--status", "dead", "--since", "24h", "--source", "twilio"])

    assert result.exit_code == 0, result.output
    assert "1 re-queued, 0 left alone" in result.output
    assert load(sqlite_shop, wanted)[0].status == "completed"
    statuses = [load(sqlite_shop, i)[0].status for i in (too_old, other_source, other_status)]
    assert statuses == ["dead", "dead", "stale"]


@pytest.mark.parametrize("args,message", [
    ([], "give MESSAGE_ID"),
    (["1", "--status", "dead"], "not both"),
    (["1", "--source", "twilio"], "use them with --status"),
    (["--status", "dead", "--since", "yesterday"], "not a duration"),
    (["--status", "completed"], "Invalid value"),
])
def test_replay_explains_bad_arguments(runner, args, message):
    result = runner.invoke(args=["webhooks", "replay", *args])
    assert result.exit_code == 2 and message in result.output


# --- sweep --------------------------------------------------------------------------------

def test_the_sweep_requeues_stuck_messages_and_leaves_fresh_ones(shop, httpserver):
    meta_ok(httpserver)
    queued_long = add_message(shop, ORDER_TEXT, age=timedelta(minutes=10))
    processing_long = add_message(shop, ORDER_TEXT, status="processing", attempts=1,
                                  age=timedelta(minutes=10))
    retry_overdue = add_message(shop, ORDER_TEXT, status="failed", attempts=1, age=timedelta(minutes=10),
                                next_attempt_at=utcnow() - timedelta(minutes=5))
    retry_due_later = add_message(shop, ORDER_TEXT, status="failed", attempts=1,
                                  next_attempt_at=utcnow() + timedelta(minutes=5))
    fresh = add_message(shop, ORDER_TEXT)
    crashed_too_often = add_message(shop, ORDER_TEXT, status="processing", attempts=6,
                                    age=timedelta(minutes=10))

    result = shop.test_cli_runner().invoke(args=["webhooks", "sweep"])

    assert result.exit_code == 0, result.output
    assert "re-queued 3 stuck messages" in result.output
    for message_id in (queued_long, processing_long, retry_overdue):
        assert load(shop, message_id)[0].status == "completed"
    assert load(shop, retry_due_later)[0].status == "failed"
    assert load(shop, fresh)[0].status == "queued"
    dead = load(shop, crashed_too_often)[0]
    assert dead.status == "dead" and "stopped during each of 6 attempts" in dead.error_message


def test_the_sweep_works_in_batches(sqlite_shop):
    ids = [add_message(sqlite_shop, ORDER_TEXT, age=timedelta(minutes=10)) for _ in range(5)]
    with sqlite_shop.app_context():
        batches = list(sweep.requeue_stuck(batch_size=2))
    assert batches == [ids[0:2], ids[2:4], ids[4:5]]


def test_the_periodic_sweep_task_queues_what_it_finds(sqlite_shop, httpserver):
    from khaacho.tasks import sweep_stuck_messages

    meta_ok(httpserver)
    message_id = add_message(sqlite_shop, ORDER_TEXT, age=timedelta(minutes=10))

    sweep_stuck_messages.call_local()

    assert load(sqlite_shop, message_id)[0].status == "completed"


# --- cleanup ------------------------------------------------------------------------------

def _old_rows(app, age: timedelta) -> None:
    when = utcnow() - age
    with app.app_context():
        for n in range(3):
            db.session.add(WebhookSignatureLog(webhook_source="whatsapp", endpoint="/webhook", is_valid=False,
                                               reason="bad signature", client_ip="203.0.113.9",
                                               created_at=when, last_seen_at=when))
            db.session.add(WebhookRateLimit(phone_number=f"{PHONE}{n}", window_start=when, request_count=5))
            db.session.add(WebhookPerformanceMetric(endpoint_path="/webhook", webhook_source="whatsapp",
                                                    bucket_start=when, created_at=when))
        db.session.commit()


def _counts(app) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in (WebhookMessage, OutboundMessage, Order, WebhookSignatureLog, WebhookRateLimit,
                              WebhookPerformanceMetric)}


@pytest.fixture
def aged(shop, httpserver):
    """Old and recent rows in every webhook table: 3 old messages without orders (2 replied), 1 old order."""
    meta_ok(httpserver)
    old = timedelta(days=40)
    for text in ("namaste", "unicorn tears 3 bottle", ORDER_TEXT):
        process_message(add_message(shop, text, age=old))
    add_message(shop, "rate limited long ago", status="rate_limited", age=old)
    add_message(shop, "still waiting for a retry", status="failed", age=old)
    add_message(shop, "recent", status="stale")
    _old_rows(shop, old)
    _old_rows(shop, timedelta(days=1))
    return shop


def test_cleanup_deletes_old_webhook_data_in_batches_and_keeps_orders(aged):
    with aged.app_context():
        deleted = cleanup.cleanup(30, batch_size=2)

    assert deleted == {"webhook_messages": 3, "outbound_messages": 2, "webhook_signature_log": 3,
                       "webhook_rate_limits": 3, "webhook_performance_metrics": 3}
    left = _counts(aged)
    assert left["webhook_messages"] == 3  # the order's message, the failed one awaiting retry, the recent one
    assert left["orders"] == 1 and left["outbound_messages"] == 1
    assert left["webhook_signature_log"] == left["webhook_rate_limits"] == 3
    assert left["webhook_performance_metrics"] == 3


def test_cleanup_dry_run_counts_and_deletes_nothing(aged):
    before = _counts(aged)

    result = aged.test_cli_runner().invoke(args=["webhooks", "cleanup", "--days", "30", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "would delete rows older than 30 days (dry run: nothing deleted)" in result.output
    assert [line.split() for line in result.output.splitlines()[1:]] == [
        ["webhook_messages", "3"], ["outbound_messages", "2"], ["webhook_signature_log", "3"],
        ["webhook_rate_limits", "3"], ["webhook_performance_metrics", "3"]]
    assert _counts(aged) == before


def test_cleanup_command_defaults_to_the_retention_setting(aged):
    aged.config["WEBHOOK_RETENTION_DAYS"] = 60

    result = aged.test_cli_runner().invoke(args=["webhooks", "cleanup"])

    assert result.exit_code == 0, result.output
    assert "deleted rows older than 60 days" in result.output
    assert result.output.splitlines()[1].split() == ["webhook_messages", "0"]


def test_the_weekly_cleanup_task_applies_the_retention_setting(aged):
    from khaacho.tasks import weekly_cleanup

    weekly_cleanup.call_local()

    assert _counts(aged)["webhook_signature_log"] == 3

