"""The stats module on seeded rows, on SQLite and PostgreSQL, and the stats API and CLI around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from khaacho import stats
from khaacho.extensions import db
from khaacho.models import (
    MetricSnapshot,
    WebhookMessage,
    WebhookPerformanceMetric,
    WebhookRateLimit,
    WebhookSignatureLog,
)
from khaacho.ops import rollup
from tests.test_auth import login

META = "/api/v1/whatsapp-hardened/webhook"
TWILIO = "/api/v1/whatsapp-hardened/twilio/webhook"


def _histogram(**counts: int) -> list[int]:
    """Bucket counts keyed like ``le50=90`` (upper bound in ms)."""
    histogram = [0] * (len(stats.LATENCY_BUCKETS_MS) + 1)
    for key, count in counts.items():
        histogram[stats.LATENCY_BUCKETS_MS.index(float(key[2:]))] += count
    return histogram


def _message(n: int, source: str, status: str, at: datetime, **fields) -> WebhookMessage:
    return WebhookMessage(
        message_id=f"wamid.{source}.{n}", webhook_source=source, phone_number="+9779841234567",
        sender_id="+9779841234567", message_text=f"{n} kg chini", payload={"n": n}, status=status,
        first_received_at=at, created_at=at, updated_at=at, **fields,
    )


def seed(now: datetime) -> datetime:
    """A small, known day of traffic; returns the hour most of it falls in."""
    hour = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    at = hour + timedelta(minutes=10)
    db.session.add_all([
        _message(1, "whatsapp", "completed", at, response_time_ms=10.0, duplicate_count=1),
        _message(2, "whatsapp", "completed", at, response_time_ms=20.0),
        _message(3, "whatsapp", "completed", at, response_time_ms=30.0, duplicate_count=2),
        _message(4, "whatsapp", "dead", at, response_time_ms=40.0, error_count=6, attempts=6),
        _message(5, "twilio", "completed", at, response_time_ms=100.0),
        _message(6, "whatsapp", "completed", now - timedelta(hours=30), response_time_ms=999.0),
        _message(7, "whatsapp", "queued", now - timedelta(minutes=3)),
    ])
    db.session.add_all([
        WebhookSignatureLog(webhook_source="whatsapp", endpoint=META, is_valid=True, client_ip="31.13.0.1",
                            request_count=1, created_at=at, last_seen_at=at) for _ in range(3)
    ] + [
        WebhookSignatureLog(webhook_source="whatsapp", endpoint=META, is_valid=False, reason="bad signature",
                            client_ip="203.0.113.9", request_count=6, created_at=at, last_seen_at=at),
        WebhookSignatureLog(webhook_source="twilio", endpoint=TWILIO, is_valid=False, reason="bad signature",
                            client_ip="198.51.100.7", request_count=1, created_at=at, last_seen_at=at),
    ])
    db.session.add_all([
        WebhookPerformanceMetric(endpoint_path=META, webhook_source="whatsapp", bucket_start=hour,
                                 request_count=100, success_count=98, total_ms=6000.0, max_ms=480.0,
                                 histogram=_histogram(le50=90, le500=10), created_at=hour),
        WebhookPerformanceMetric(endpoint_path=META, webhook_source="whatsapp",
                                 bucket_start=hour + timedelta(minutes=1), request_count=100,
                                 success_count=100, total_ms=3000.0, max_ms=40.0,
                                 histogram=_histogram(le50=100), created_at=hour),
        WebhookPerformanceMetric(endpoint_path=TWILIO, webhook_source="twilio", bucket_start=hour,
                                 request_count=4, success_count=4, total_ms=400.0, max_ms=130.0,
                                 histogram=_histogram(le250=4), created_at=hour),
    ])
    db.session.add_all([
        WebhookRateLimit(phone_number="+9779841234567", window_start=hour, request_count=120,
                         blocked_count=20, updated_at=at),
        WebhookRateLimit(phone_number="+9779857654321", window_start=hour, request_count=5,
                         blocked_count=0, updated_at=at),
        WebhookRateLimit(phone_number="+9779800000000", window_start=now - timedelta(days=3),
                         request_count=500, blocked_count=400, updated_at=now - timedelta(days=3)),
    ])
    db.session.flush()
    # The per-minute rows above stand for these audit rows: the minute task has rolled them up.
    last_audit = db.session.scalar(select(func.max(WebhookSignatureLog.id)))
    db.session.add(MetricSnapshot(name=rollup.WATERMARK[0], label=rollup.WATERMARK[1], value=last_audit,
                                  taken_at=now))
    db.session.commit()
    return hour


def test_histogram_percentiles_interpolate_inside_buckets():
    counts = _histogram(le50=190, le500=10)
    assert stats.histogram_percentile(counts, 0.95, 480.0) == 50.0
    assert stats.histogram_percentile(counts, 0.99, 480.0) == 450.0
    assert stats.histogram_percentile(counts, 0.999, 460.0) == 460.0  # never above the slowest request
    assert stats.histogram_percentile(_histogram(), 0.95, 0.0) is None


def test_a_request_lands_in_the_bucket_whose_bound_it_does_not_exceed(any_app):
    at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with any_app.app_context():
        db.session.add_all([
            WebhookSignatureLog(webhook_source="twilio", endpoint=TWILIO, is_valid=True, request_count=1,
                                response_ms=ms, created_at=at, last_seen_at=at)
            for ms in (10.0, 10.01, 60_000.0)])
        db.session.commit()
        timings = rollup.audit_timings("hour", 0)[(at, TWILIO, "twilio")]
    assert timings["histogram"] == [1, 1] + [0] * (len(stats.LATENCY_BUCKETS_MS) - 2) + [1]
    assert timings["max_ms"] == 60_000.0


def test_stats_from_seeded_rows(any_app):
    now = datetime.now(UTC)
    with any_app.app_context():
        hour = seed(now).isoformat()
        since = stats.window_start(24, now)
        processing = {(r["webhook_source"], r["status"]): r for r in stats.processing(since)}
        security = stats.security(since)
        performance = stats.performance(since, "whatsapp")
        limits = stats.rate_limits(since)
        queue = stats.queue(now)

    assert processing[("whatsapp", "completed")] == {
        "webhook_source": "whatsapp", "status": "completed", "message_count": 3,
        "avg_response_time_ms": 20.0, "max_response_time_ms": 30.0, "total_duplicates": 3, "total_errors": 0,
    }
    assert processing[("whatsapp", "dead")]["total_errors"] == 6
    assert processing[("twilio", "completed")]["message_count"] == 1
    assert ("whatsapp", "queued") in processing
    assert sum(r["message_count"] for r in processing.values()) == 6  # the 30-hour-old one is outside

    assert security == [{"hour": hour, "total_requests": 10, "valid_signatures": 3, "invalid_signatures": 7,
                         "suspicious_requests": 6}]

    assert performance == [{
        "endpoint_path": META, "hour": hour, "request_count": 200, "avg_response_time_ms": 45.0,
        "p95_response_time_ms": 50.0, "p99_response_time_ms": 450.0, "success_rate": 99.0,
    }]

    assert [(r["phone_number"], r["request_count"], r["blocked_count"]) for r in limits] == [
        ("+9779841234567", 120, 20), ("+9779857654321", 5, 0)]

    assert queue["queued"] == 1
    assert 170 <= queue["oldest_queued_age_seconds"] <= 200


def test_health_tiles_flag_what_operators_alert_on(app):
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=5)
    with app.app_context():
        db.session.add_all([_message(i, "whatsapp", "completed", recent, duplicate_count=1)
                            for i in range(8)])
        db.session.add_all([_message(10 + i, "whatsapp", "dead", recent) for i in range(2)])
        db.session.add(_message(20, "whatsapp", "queued", now - timedelta(minutes=10)))
        db.session.add(WebhookSignatureLog(webhook_source="whatsapp", endpoint=META, is_valid=False,
                                           client_ip="203.0.113.9", request_count=2, created_at=recent,
                                           last_seen_at=recent))
        db.session.add(WebhookPerformanceMetric(
            endpoint_path=META, webhook_source="whatsapp", bucket_start=recent, request_count=10,
            success_count=10, total_ms=25000.0, max_ms=4000.0, histogram=_histogram(le2500=5, le5000=5)))
        db.session.commit()
        tiles = {t["key"]: t for t in stats.health(now=now)}

    assert tiles["ack"]["state"] == "alert"
    assert tiles["duplicates"]["state"] == "alert" and tiles["duplicates"]["value"] == "42.1 %"
    assert tiles["errors"]["state"] == "alert" and "2 dead of 11" in tiles["errors"]["detail"]
    assert tiles["invalid"] == {**tiles["invalid"], "state": "warn", "value": "2"}
    assert tiles["queue"]["state"] == "alert"
    assert tiles["limiter"]["value"] == "memory" and tiles["blocked"]["state"] == "ok"


def test_quiet_system_shows_no_data_rather_than_alarms(app):
    with app.app_context():
        tiles = {t["key"]: t["state"] for t in stats.health()}
    assert tiles == {"ack": "idle", "duplicates": "idle", "errors": "idle", "blocked": "ok",
                     "invalid": "ok", "queue": "ok", "limiter": "ok"}


def test_limiter_failing_open_is_shown(sqlite_url):
    from khaacho import create_app
    from tests.conftest import make_config

    unreachable = "redis://127.0.0.1:1/0"
    app = create_app(make_config(sqlite_url, REDIS_URL=unreachable, RATELIMIT_STORAGE_URI=unreachable,
                                 RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.2}))
    with app.app_context():
        tile = next(t for t in stats.health() if t["key"] == "limiter")
        db.engine.dispose()
    assert tile["state"] == "alert" and tile["value"] == "failing open"


def test_requests_that_failed_open_in_any_worker_alert_the_limiter_tile(app):
    from khaacho.processing.senders import LIMITER_DOWN_REASON

    recent = datetime.now(UTC) - timedelta(minutes=2)
    with app.app_context():
        db.session.add(WebhookSignatureLog(webhook_source="whatsapp", endpoint=META, is_valid=True,
                                           reason=LIMITER_DOWN_REASON, client_ip="31.13.0.1", request_count=3,
                                           created_at=recent, last_seen_at=recent))
        db.session.commit()
        tile = next(t for t in stats.health() if t["key"] == "limiter")
    assert tile["state"] == "alert" and tile["detail"] == "3 messages let through unchecked"


def test_stats_api_matches_the_contract(any_app):
    from khaacho.auth.cli import create_user

    with any_app.app_context():
        seed(datetime.now(UTC))
        create_user("ops@khaacho.local", "correct horse", "admin")
        db.session.commit()
    client = any_app.test_client()
    login(client)
    body = client.get("/api/v1/whatsapp-hardened/stats?source=twilio&hours=24").get_json()
    assert body["success"] is True
    assert set(body["data"]) == {"processing", "security", "performance", "rate_limits"}
    assert [(r["webhook_source"], r["message_count"]) for r in body["data"]["processing"]] == [("twilio", 1)]
    assert body["data"]["security"][0]["invalid_signatures"] == 1
    assert body["data"]["performance"][0]["endpoint_path"] == TWILIO
    assert set(body["data"]["performance"][0]) == {
        "endpoint_path", "hour", "request_count", "avg_response_time_ms", "p95_response_time_ms",
        "p99_response_time_ms", "success_rate"}


@pytest.mark.parametrize("query", ["source=facebook", "hours=0", "hours=721", "hours=abc", "hours=-1",
                                   "hours=2.5", "hours=%C2%B2"])
def test_stats_api_rejects_bad_parameters(client, make_user, query):
    make_user()
    login(client)
    response = client.get(f"/api/v1/whatsapp-hardened/stats?{query}")
    assert response.status_code == 400
    assert response.get_json()["success"] is False


def test_stats_cli_prints_the_same_numbers_as_a_table(app, runner):
    with app.app_context():
        seed(datetime.now(UTC))
    result = runner.invoke(args=["webhooks", "stats", "--hours", "24"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Processing by status" in out and "Top senders" in out
    completed = next(line for line in out.splitlines() if "whatsapp" in line and "completed" in line)
    assert completed.split()[:3] == ["whatsapp", "completed", "3"]
    assert "+9779841234567" in out and "450.00" in out
    assert runner.invoke(args=["webhooks", "stats", "--hours", "0"]).exit_code == 2


def test_average_response_time_counts_only_requests_that_have_a_time(any_app):
    now = datetime.now(UTC)
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    with any_app.app_context():
        # 10 requests: 4 rejected (no time), 6 accepted that took 120 ms in all.
        db.session.add(WebhookPerformanceMetric(
            endpoint_path=META, webhook_source="whatsapp", bucket_start=hour, request_count=10,
            success_count=6, total_ms=120.0, max_ms=40.0, histogram=_histogram(le25=4, le50=2),
            created_at=hour))
        db.session.commit()
        _, summary = stats.performance_report(now - timedelta(hours=24))
    assert summary[0]["request_count"] == 10
    assert summary[0]["avg_response_time_ms"] == 20.0
    assert summary[0]["success_rate"] == 60.0
