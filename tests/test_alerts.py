"""Alerts: raised once per kind, kept with history, posted to a loopback receiver at most every 15 min."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from khaacho.extensions import db
from khaacho.models import (
    Alert,
    OutboundMessage,
    WebhookMessage,
    WebhookSignatureLog,
    WorkerHeartbeat,
    utcnow,
)
from khaacho.ops import alerts
from khaacho.tasks import operations_minute
from tests.processing_support import add_message
from tests.test_auth import login

ALERT_PATH = "/hooks/alerts"


@pytest.fixture
def alerting(any_app, httpserver):
    """The app on each backend posting alerts to a loopback receiver."""
    any_app.config["ALERT_WEBHOOK_URL"] = httpserver.url_for(ALERT_PATH)
    httpserver.expect_request(ALERT_PATH, method="POST").respond_with_data("ok")
    return any_app


def posts(httpserver) -> list[str]:
    return [json.loads(request.get_data())["text"] for request, _ in httpserver.log
            if request.path == ALERT_PATH]


def evaluate(app, after: timedelta = timedelta(0)) -> None:
    with app.app_context():
        alerts.evaluate(utcnow() + after)


def make_every_kind_fire(app) -> None:
    now = utcnow()
    add_message(app, "5 kg chini", status="dead")
    add_message(app, "2 kg dal", status="queued", age=timedelta(minutes=10))
    with app.app_context():
        db.session.add(WebhookSignatureLog(webhook_source="whatsapp", endpoint="/x", is_valid=False,
                                           reason="invalid signature", client_ip="203.0.113.9",
                                           request_count=51, last_seen_at=now, created_at=now))
        db.session.add(WorkerHeartbeat(consumer_id="box:42:1", hostname="box", pid=42, tasks_done=0,
                                       started_at=now - timedelta(hours=1),
                                       last_seen_at=now - timedelta(minutes=3)))
        db.session.commit()
    for i in range(11):
        message_id = add_message(app, f"{i} kg chini", status="completed")
        with app.app_context():
            db.session.add(OutboundMessage(webhook_message_id=message_id, provider="whatsapp",
                                           recipient="+9779841234567", body="hi", status="failed"))
            db.session.commit()


def test_each_kind_is_posted_once_with_what_and_how_many(alerting, httpserver):
    make_every_kind_fire(alerting)
    evaluate(alerting)
    evaluate(alerting, timedelta(seconds=60))
    evaluate(alerting, timedelta(seconds=120))
    texts = posts(httpserver)
    assert len(texts) == 5
    joined = "\n".join(texts)
    for what in ("1 message went dead", "oldest queued message waited 10 min (1 queued)",
                 "51 webhook requests with an invalid signature", "11 reply deliveries failed",
                 "1 consumer silent for over 120 s: box:42:1"):
        assert what in joined
    with alerting.app_context():
        assert len(alerts.active()) == 5 and len(alerts.history()) == 5


def test_a_cleared_alert_is_posted_once_and_a_quick_return_waits_out_the_window(alerting, httpserver):
    message_id = add_message(alerting, "5 kg chini", status="dead")
    evaluate(alerting)
    evaluate(alerting, timedelta(minutes=16))  # no death in the last 15 minutes: cleared
    evaluate(alerting, timedelta(minutes=17))
    texts = posts(httpserver)
    assert len(texts) == 2 and "Khaacho alert" in texts[0] and "resolved" in texts[1]
    # Dies again 2 minutes after the first post: raised and shown, but not posted yet.
    with alerting.app_context():
        db.session.execute(update(WebhookMessage).where(WebhookMessage.id == message_id)
                           .values(updated_at=utcnow() + timedelta(minutes=2)))
        db.session.commit()
    evaluate(alerting, timedelta(minutes=2))
    assert len(posts(httpserver)) == 2
    with alerting.app_context():
        assert [a.kind for a in alerts.active()] == ["dead_messages"]
    evaluate(alerting, timedelta(minutes=15))  # still firing, 15 minutes after the last post
    assert len(posts(httpserver)) == 3


def test_alerts_without_a_webhook_url_are_only_on_the_dashboard(app, make_user):
    add_message(app, "5 kg chini", status="dead")
    operations_minute.call_local()
    client = app.test_client()
    make_user("viewer@khaacho.local", role="viewer")
    login(client, "viewer@khaacho.local")
    html = client.get("/dashboard").get_data(as_text=True)
    assert 'data-alert="dead_messages"' in html and "1 message went dead" in html
    with app.app_context():
        assert db.session.query(Alert).one().posted_at is None


def test_a_failed_post_is_tried_again_next_minute(any_app, httpserver):
    any_app.config["ALERT_WEBHOOK_URL"] = httpserver.url_for(ALERT_PATH)
    httpserver.expect_oneshot_request(ALERT_PATH).respond_with_data("down", status=503)
    add_message(any_app, "5 kg chini", status="dead")
    evaluate(any_app)
    httpserver.expect_request(ALERT_PATH).respond_with_data("ok")
    evaluate(any_app, timedelta(minutes=1))
    evaluate(any_app, timedelta(minutes=2))
    assert len(posts(httpserver)) == 2  # the refused one and its retry
    with any_app.app_context():
        assert db.session.query(Alert).one().posted_at is not None
