"""Replay, sweep and cleanup: the CLI commands and the periodic tasks (Huey immediate)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

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
from khaacho.processing import cleanup, sweep
from khaacho.tasks import process_message
from tests.processing_support import (
    META_PATH,
    ORDER_TEXT,
    PHONE,
    add_message,
    load,
    meta_ok,
    provider_requests,
    twilio_ok,
)

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


def test_replay_accepts_the_provider_message_id_and_reports_unknown_ids(shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT, status="rate_limited")
    provider_id = load(shop, message_id)[0].message_id

    result = shop.test_cli_runner().invoke(args=["webhooks", "replay", provider_id, "999",
                                                 "99999999999999999999"])

    assert result.exit_code == 0, result.output
    assert f"{provider_id} (id {message_id}): rate_limited -> queued" in result.output
    assert "999: left alone: no such message" in result.output
    assert "99999999999999999999: left alone: no such message" in result.output
    assert "1 re-queued, 2 left alone" in result.output
    assert load(shop, message_id)[0].status == "completed"


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
        batches = [sorted(batch) for batch in sweep.requeue_stuck(batch_size=2)]
    assert batches == [ids[0:2], ids[2:4], ids[4:5]]


def test_concurrent_sweeps_on_postgresql_skip_rows_another_sweep_holds(pg_app, pg_clean_url):
    import psycopg

    ids = [add_message(pg_app, ORDER_TEXT, age=timedelta(minutes=10)) for _ in range(4)]
    with psycopg.connect(pg_clean_url) as other:  # another consumer's sweep, mid-transaction
        other.execute("SELECT id FROM webhook_messages WHERE id = ANY(%s) FOR UPDATE", (ids[:2],))
        with pg_app.app_context():
            first = list(sweep.requeue_stuck())
        other.rollback()
    with pg_app.app_context():
        second = list(sweep.requeue_stuck())

    assert [sorted(batch) for batch in first] == [ids[2:]]
    assert [sorted(batch) for batch in second] == [ids[:2]]


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
