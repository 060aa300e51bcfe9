"""``GET /metrics``: Prometheus text for the whole deployment, read from shared tables."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from khaacho.auth.cli import create_user
from khaacho.extensions import db
from khaacho.models import ApiToken, WebhookSignatureLog, utcnow
from khaacho.ops import rollup
from khaacho.processing import worker
from tests.conftest import _psycopg_url, service_env
from tests.intake_support import hold_tasks_of_test_app
from tests.processing_support import ORDER_TEXT, add_message, meta_ok
from tests.support import META_PATH, meta_text_payload, signed_meta, wait_for


@pytest.fixture
def queue(request, monkeypatch):
    return hold_tasks_of_test_app(request, monkeypatch)


def make_token(app, role: str = "admin") -> str:
    token = secrets.token_urlsafe(32)
    with app.app_context():
        user = create_user(f"{role}-{token[:6]}@khaacho.local", "correct horse", role)
        db.session.add(ApiToken(user=user, token_hash=ApiToken.hash(token)))
        db.session.commit()
    return token


def scrape(get, token: str) -> dict[str, dict[tuple, float]]:
    """Samples by name, then by sorted label pairs, parsed with prometheus_client's own parser."""
    response = get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def post_meta(client, n: int, prefix: str = "wamid.M") -> None:
    for i in range(n):
        body, headers = signed_meta(meta_text_payload("5 kg chini", f"{prefix}{i}"))
        assert client.post(META_PATH, data=body, headers=headers).status_code == 200


def post_forged(client, n: int) -> None:
    body, headers = signed_meta(meta_text_payload("5 kg chini", "wamid.FORGED"), secret="wrong-secret")
    for _ in range(n):
        assert client.post(META_PATH, data=body, headers=headers).status_code in (401, 403)


def test_metrics_want_an_admin_bearer_token(app):
    client = app.test_client()
    token, viewer = make_token(app), make_token(app, role="viewer")
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_metrics_count_requests_messages_and_ack_times(any_app, queue):
    client = any_app.test_client()
    token = make_token(any_app)
    post_meta(client, 3)
    post_forged(client, 2)
    samples = scrape(client.get, token)
    requests_total = samples["khaacho_webhook_requests_total"]
    assert requests_total[(("outcome", "accepted"), ("source", "whatsapp"))] == 3
    assert requests_total[(("outcome", "rejected"), ("source", "whatsapp"))] == 2
    assert requests_total[(("outcome", "accepted"), ("source", "twilio"))] == 0
    ack = samples["khaacho_webhook_ack_seconds_bucket"]
    assert ack[(("le", "+Inf"), ("source", "whatsapp"))] == 3
    # Buckets resolve the 5–50 ms range the acknowledgement lives in.
    les = {dict(labels)["le"] for labels in ack}
    assert {"0.005", "0.01", "0.015", "0.02", "0.025", "0.03", "0.04", "0.05"} <= les
    assert samples["khaacho_webhook_ack_seconds_count"][(("source", "whatsapp"),)] == 3
    assert samples["khaacho_messages"][(("status", "queued"),)] == 3
    assert samples["khaacho_queue_oldest_seconds"][()] >= 0


def test_counts_survive_the_rollup_and_the_retention_cleanup(any_app, queue):
    client = any_app.test_client()
    token = make_token(any_app)
    post_meta(client, 4)
    post_forged(client, 1)
    before = scrape(client.get, token)["khaacho_webhook_requests_total"]
    with any_app.app_context():
        rollup.roll_up(utcnow() + timedelta(minutes=5))  # every row is old enough to fold
        rollup.roll_up(utcnow() + timedelta(minutes=6))  # a second run folds nothing twice
        db.session.execute(delete(WebhookSignatureLog))  # as the weekly cleanup does, later
        db.session.commit()
    after = scrape(client.get, token)
    assert after["khaacho_webhook_requests_total"] == before
    assert after["khaacho_webhook_ack_seconds_count"][(("source", "whatsapp"),)] == 4
    with any_app.app_context():
        rollup.roll_up(utcnow() + timedelta(minutes=7))
    post_meta(client, 1, prefix="wamid.LATER")
    later = scrape(client.get, token)["khaacho_webhook_requests_total"]
    assert later[(("outcome", "accepted"), ("source", "whatsapp"))] == 5


def test_message_order_and_reply_counts_follow_processing(shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT)
    token = make_token(shop)
    client = shop.test_client()
    with shop.app_context():
        worker.process(message_id)
        rollup.roll_up()
    samples = scrape(client.get, token)
    assert samples["khaacho_messages"][(("status", "completed"),)] == 1
    assert samples["khaacho_messages"][(("status", "queued"),)] == 0
    assert sum(samples["khaacho_orders"].values()) == 1
    assert samples["khaacho_replies_total"][(("kind", "confirmation"), ("status", "sent"))] == 1
    assert samples["khaacho_counts_age_seconds"][()] < 60


@pytest.mark.integration
def test_counts_agree_across_four_gunicorn_workers(pg_app, pg_clean_url, redis_url, processes):
    token = make_token(pg_app)
    env = service_env(_psycopg_url(pg_clean_url), redis_url)
    base = processes.gunicorn(env, workers=4)
    session = requests.Session()
    for i in range(40):
        body, headers = signed_meta(meta_text_payload("5 kg chini", f"wamid.W{i}"))
        assert requests.post(base + META_PATH, data=body, headers=headers, timeout=10).status_code == 200

    def get(path, headers):
        return session.get(base + path, headers=headers, timeout=10)

    # Each scrape is a new connection, so the four workers all answer some of them.
    seen = set()
    for _ in range(12):
        samples = scrape(lambda p, headers: requests.get(base + p, headers=headers, timeout=10), token)
        seen.add(samples["khaacho_webhook_requests_total"][(("outcome", "accepted"), ("source", "whatsapp"))])
    assert seen == {40}
    wait_for(lambda: scrape(get, token)["khaacho_webhook_ack_seconds_count"][(("source", "whatsapp"),)] == 40,
             "the ack histogram to count every request")
