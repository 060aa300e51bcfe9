"""Webhook intake through the test client: what is stored, queued, counted and answered."""

from __future__ import annotations

import copy
import io
import json
import time
from datetime import timedelta

import pytest
from huey.storage import MemoryStorage
from limits import RateLimitItemPerMinute
from sqlalchemy import text
from werkzeug.test import EnvironBuilder

from khaacho import stats
from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage, utcnow
from khaacho.ops import rollup
from khaacho.processing import relay
from khaacho.processing.senders import LIMITER_DOWN_REASON
from khaacho.webhooks import audit, metrics
from khaacho.webhooks.fastpath import FastPath
from tests.intake_support import hold_tasks, hold_tasks_of_test_app
from tests.support import (
    META_PATH,
    TWILIO_PATH,
    meta_text_payload,
    sample,
    signed_meta,
    signed_twilio,
)

TWILIO_URL = "http://localhost" + TWILIO_PATH


@pytest.fixture
def queue(request, monkeypatch):
    """Queued message ids, held in memory instead of processed inline."""
    return hold_tasks_of_test_app(request, monkeypatch)


def post_meta(client, payload):
    body, headers = signed_meta(payload)
    return client.post(META_PATH, data=body, headers=headers)


def post_twilio(client, form):
    return client.post(TWILIO_PATH, data=form, headers=signed_twilio(TWILIO_URL, form))


def rows(app, sql: str, **params) -> list:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(text(sql), params)]


def fresh(payload: dict) -> dict:
    """The sample with every message timestamp set to now, so it is inside the replay window."""
    payload = copy.deepcopy(payload)
    for entry in payload["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
    return payload


# --- recording ----------------------------------------------------------------------------

def test_duplicate_delivery_is_counted_not_requeued(any_app, queue):
    client = any_app.test_client()
    payload = meta_text_payload("5 kg chini", "wamid.dup1")
    assert [post_meta(client, payload).status_code for _ in range(3)] == [200, 200, 200]
    stored = rows(any_app, "SELECT id, duplicate_count, status, last_duplicate_at IS NOT NULL "
                           "FROM webhook_messages")
    assert len(stored) == 1
    row_id, duplicates, status, has_last_duplicate = stored[0]
    assert (duplicates, status, bool(has_last_duplicate)) == (2, "queued", True)
    assert queue() == [row_id]


def test_webhook_answer_sets_no_cookie_and_keeps_the_security_headers(app, queue):
    client = app.test_client()
    response = post_meta(client, meta_text_payload("5 kg chini", "wamid.nocookie"))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"]
    assert "session=" in client.get("/login").headers.get("Set-Cookie", "")  # people still get theirs


def without_fast_path(app) -> None:
    """Take :class:`FastPath` out of the app's middleware chain (``ProxyFix`` stays outermost)."""
    outer = app.wsgi_app
    assert isinstance(outer.app, FastPath)
    outer.app = outer.app.wsgi_app


def test_fast_path_sits_inside_proxy_fix_and_nothing_overrides_flask(app):
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    assert type(app) is Flask
    assert isinstance(app.wsgi_app, ProxyFix) and isinstance(app.wsgi_app.app, FastPath)


def test_meta_delivery_is_answered_by_the_fast_path_exactly_as_the_view_answers_it(app, queue):
    hooks = []
    app.before_request(lambda: hooks.append("ran"))
    client = app.test_client()

    def deliver(message_id):
        body, headers = signed_meta(meta_text_payload("5 kg chini", message_id))
        return client.post(META_PATH, data=body, headers={**headers, "X-Request-ID": f"req-{message_id}"})

    direct = deliver("wamid.direct")
    assert hooks == []  # Flask's request machinery never ran
    without_fast_path(app)
    viewed = deliver("wamid.view")
    assert hooks == ["ran"]

    assert (direct.status, direct.data) == (viewed.status, viewed.data) == ("200 OK", b"OK")
    assert dict(direct.headers) == {**dict(viewed.headers), "X-Request-ID": "req-wamid.direct"}
    assert rows(app, "SELECT message_id, status, request_id, response_time_ms > 0 FROM webhook_messages "
                     "ORDER BY id") == [("wamid.direct", "queued", "req-wamid.direct", True),
                                        ("wamid.view", "queued", "req-wamid.view", True)]
    assert rows(app, "SELECT is_valid, reason, response_ms > 0 FROM webhook_signature_log") == [
        (True, None, True), (True, None, True)]
    assert len(queue()) == 2


def test_meta_delivery_without_a_content_length_is_left_to_the_view(app, queue):
    body, headers = signed_meta(meta_text_payload("5 kg chini", "wamid.chunked"))
    environ = EnvironBuilder(path=META_PATH, method="POST", input_stream=io.BytesIO(body),
                             headers=headers).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # as a server passes a chunked body on
    assert app.test_client().open(environ).status_code == 200
    assert rows(app, "SELECT message_id, status FROM webhook_messages") == [("wamid.chunked", "queued")]


def test_meta_delivery_cut_short_is_refused_and_stores_nothing(app, queue):
    body, headers = signed_meta(meta_text_payload("5 kg chini", "wamid.short"))
    environ = EnvironBuilder(path=META_PATH, method="POST", input_stream=io.BytesIO(body[:40]),
                             headers=headers).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body))  # the client went away mid-body
    assert app.test_client().open(environ).status_code == 403  # the bytes that came do not verify
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(0,)]


def test_batch_sample_stores_every_message_with_its_text(any_app, queue):
    app = any_app
    assert post_meta(app.test_client(), fresh(sample("meta-batch.json"))).status_code == 200
    stored = rows(app, "SELECT phone_number, sender_id, message_type, message_text, status "
                       "FROM webhook_messages ORDER BY id")
    assert sorted(stored) == [
        ("+9779841234567", "+9779841234567", "text", "add 1 carton rara", "queued"),
        ("+9779857654321", "+9779857654321", "button", "Confirm", "queued"),
    ]
    assert len(queue()) == 2
    for message_id, payload in rows(app, "SELECT message_id, payload FROM webhook_messages"):
        payload = json.loads(payload) if isinstance(payload, str) else payload
        assert payload["id"] == message_id  # the message's own JSON
    assert rows(app, "SELECT count(*) FROM webhook_signature_log") == [(1,)]


def test_reaction_from_a_username_user_is_keyed_by_user_id_and_left_to_the_worker(app, queue):
    assert post_meta(app.test_client(), fresh(sample("meta-reaction-username.json"))).status_code == 200
    assert rows(app, "SELECT id, phone_number, sender_id, message_type, status FROM webhook_messages") == [
        (1, None, "NP.13491208655302741918", "reaction", "queued")]
    assert queue() == [1]  # the worker marks it ignored and records the shop's profile name


def test_text_from_a_username_user_is_queued_under_the_user_id(app, queue):
    payload = meta_text_payload("2 packet wai wai", "wamid.user1")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["from"]
    message["from_user_id"] = "NP.998877"
    assert post_meta(app.test_client(), payload).status_code == 200
    assert rows(app, "SELECT phone_number, sender_id, status FROM webhook_messages") == [
        (None, "NP.998877", "queued")]
    assert len(queue()) == 1


@pytest.mark.parametrize("age_seconds", [25 * 3600, -3600])
def test_message_outside_the_replay_window_is_stale_and_not_queued(app, queue, age_seconds):
    payload = meta_text_payload("5 kg chini", "wamid.old", timestamp=int(time.time()) - age_seconds)
    assert post_meta(app.test_client(), payload).status_code == 200
    assert rows(app, "SELECT status FROM webhook_messages") == [("stale",)]
    assert queue() == []


def test_sender_over_the_limit_is_rate_limited_counted_and_answered_200(any_app, queue):
    any_app.config.update(WEBHOOK_RATE_LIMIT_MAX=3)
    client = any_app.test_client()
    codes = [post_meta(client, meta_text_payload(f"{i} kg chini", f"wamid.rl{i}")).status_code
             for i in range(5)]
    codes.append(post_meta(client, meta_text_payload("1 kg dal", "wamid.other", sender="9779857654321"))
                 .status_code)
    assert codes == [200] * 6

    def by_status() -> dict:
        return dict(rows(any_app, "SELECT status, count(*) FROM webhook_messages "
                                  "WHERE sender_id = '+9779841234567' GROUP BY status"))

    assert by_status() == {"queued": 3, "rate_limited": 2}
    assert rows(any_app, "SELECT phone_number, request_count, blocked_count FROM webhook_rate_limits") == [
        ("+9779841234567", 5, 2)]
    assert len(queue()) == 4  # three from the limited sender, one from the other


def test_limiter_outage_fails_open_and_is_audited(sqlite_url, monkeypatch):
    from khaacho import create_app
    from tests.conftest import make_config
    from tests.intake_support import RelayingClient

    app = create_app(make_config(sqlite_url, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1",
                                 RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5}))
    app.test_client_class = RelayingClient
    queue = hold_tasks(monkeypatch)
    client = app.test_client()
    for i in range(2):
        assert post_meta(client, meta_text_payload("5 kg chini", f"wamid.open{i}")).status_code == 200
    assert rows(app, "SELECT status FROM webhook_messages") == [("queued",), ("queued",)]
    # The requests' own audit rows, then one per relay pass that let a message through unchecked.
    assert rows(app, "SELECT endpoint, reason, request_count FROM webhook_signature_log ORDER BY id") == [
        (META_PATH, None, 1), (relay.AUDIT_ENDPOINT, LIMITER_DOWN_REASON, 1),
        (META_PATH, None, 1), (relay.AUDIT_ENDPOINT, LIMITER_DOWN_REASON, 1)]
    assert len(queue()) == 2
    with app.app_context():
        db.engine.dispose()


def test_queue_outage_after_commit_still_answers_200_and_leaves_the_message_queued(app, monkeypatch):
    class DeadQueue(MemoryStorage):
        def enqueue(self, data, priority=None):
            raise ConnectionError("queue down")

    hold_tasks(monkeypatch, DeadQueue("dead"))
    assert post_meta(app.test_client(), meta_text_payload("5 kg chini", "wamid.q")).status_code == 200
    assert rows(app, "SELECT status FROM webhook_messages") == [("queued",)]


def test_database_failure_answers_503_and_queues_nothing(tmp_path, monkeypatch):
    from khaacho import create_app
    from tests.conftest import make_config

    app = create_app(make_config(f"sqlite:///{tmp_path}/missing-dir/khaacho.db"))
    queue = hold_tasks(monkeypatch)
    response = post_meta(app.test_client(), meta_text_payload("5 kg chini", "wamid.down"))
    assert response.status_code == 503
    assert response.get_json() == {"error": "storage unavailable, retry later"}
    assert response.headers["Retry-After"]
    assert queue() == []


# --- Twilio -------------------------------------------------------------------------------

def test_twilio_message_is_stored_in_e164_and_answered_with_twiml(any_app, queue):
    form = json.loads(json.dumps(sample("twilio-message.form.json")))
    response = post_twilio(any_app.test_client(), form)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.data.endswith(b"<Response/>")
    assert rows(any_app, "SELECT webhook_source, message_id, phone_number, message_text, status "
                         "FROM webhook_messages") == [
        ("twilio", "SM3f1c2b9e8d7a6b5c4d3e2f1a0b9c8d7e", "+9779841234567", "चामल २५ केजी", "queued")]
    assert len(queue()) == 1


def test_twilio_sandbox_without_validation_stores_and_says_so_in_the_audit(app, queue):
    app.config["TWILIO_SKIP_VALIDATION"] = True
    form = sample("twilio-message.form.json")
    assert app.test_client().post(TWILIO_PATH, data=form).status_code == 200
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(1,)]
    assert rows(app, "SELECT reason FROM webhook_signature_log") == [
        ("signature not checked (TWILIO_SKIP_VALIDATION)",)]


def test_twilio_location_message_keeps_the_place_as_text(app, queue):
    form = {"MessageSid": "SMloc1", "From": "whatsapp:+9779841234567", "Latitude": "27.7172",
            "Longitude": "85.3240", "Address": "Ason, Kathmandu", "Label": "Hari Kirana", "Body": ""}
    assert post_twilio(app.test_client(), form).status_code == 200
    assert rows(app, "SELECT message_type, message_text FROM webhook_messages") == [
        ("location", "Location: Hari Kirana, Ason, Kathmandu (27.7172, 85.324)")]


# --- status callbacks ---------------------------------------------------------------------

def _outbound(app, provider_message_id: str, provider: str = "whatsapp") -> None:
    with app.app_context():
        message = WebhookMessage(message_id=f"in-{provider_message_id}", webhook_source=provider,
                                 sender_id="+9779841234567", status="completed")
        db.session.add(message)
        db.session.flush()
        db.session.add(OutboundMessage(webhook_message_id=message.id, provider=provider,
                                       recipient="+9779841234567", body="Order confirmed",
                                       provider_message_id=provider_message_id, status="sent"))
        db.session.commit()


def _meta_status(provider_message_id: str, status: str) -> dict:
    payload = sample("meta-statuses.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"] = [dict(value["statuses"][0], id=provider_message_id, status=status)]
    return payload


def test_meta_statuses_update_outbound_messages_and_never_regress(any_app):
    payload = sample("meta-statuses.json")
    delivered_id, failed_id = (s["id"] for s in payload["entry"][0]["changes"][0]["value"]["statuses"])
    _outbound(any_app, delivered_id)
    _outbound(any_app, failed_id)
    client = any_app.test_client()
    assert post_meta(client, payload).status_code == 200
    state = dict((pid, (s, e)) for pid, s, e in rows(
        any_app, "SELECT provider_message_id, delivery_status, delivery_error FROM outbound_messages"))
    assert state[delivered_id] == ("delivered", None)
    assert state[failed_id][0] == "failed" and "131047" in state[failed_id][1]

    for status in ("read", "delivered", "sent", "read"):
        assert post_meta(client, _meta_status(delivered_id, status)).status_code == 200
    assert rows(any_app, "SELECT delivery_status FROM outbound_messages WHERE provider_message_id = :p",
                p=delivered_id) == [("read",)]
    assert rows(any_app, "SELECT count(*) FROM webhook_messages") == [(2,)]


def test_status_for_an_unknown_message_is_answered_200_and_ignored(app):
    _outbound(app, "wamid.known")
    assert post_meta(app.test_client(), _meta_status("wamid.unknown", "read")).status_code == 200
    assert rows(app, "SELECT delivery_status FROM outbound_messages") == [(None,)]


def test_twilio_status_callback_updates_the_outbound_message(any_app):
    form = sample("twilio-status.form.json")
    _outbound(any_app, form["MessageSid"], provider="twilio")
    client = any_app.test_client()
    assert post_twilio(client, form).status_code == 200
    assert post_twilio(client, dict(form, MessageStatus="sent")).status_code == 200
    assert rows(any_app, "SELECT delivery_status FROM outbound_messages") == [("delivered",)]
    failed = dict(form, MessageSid="SMunknown", MessageStatus="failed", ErrorCode="63016")
    assert post_twilio(client, failed).status_code == 200


# --- bad input ----------------------------------------------------------------------------

def test_malformed_json_with_a_valid_signature_is_400_and_audited(app):
    for body in (b'{"entry": [', b"\xff\xfe not utf-8", b'{"a": NaN}'):
        signed, headers = signed_meta(body)
        assert app.test_client().post(META_PATH, data=signed, headers=headers).status_code == 400
    assert rows(app, "SELECT is_valid, reason, count(*) FROM webhook_signature_log "
                     "GROUP BY is_valid, reason") == [(1, "malformed JSON", 3)]
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(0,)]


def test_body_over_4_mib_is_413_audited_and_not_stored(app):
    body, headers = signed_meta(b'{"entry": [], "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}')
    response = app.test_client().post(META_PATH, data=body, headers=headers)
    assert response.status_code == 413
    assert rows(app, "SELECT is_valid, reason FROM webhook_signature_log") == [(0, "body too large")]
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(0,)]


@pytest.mark.parametrize("method, path", [
    ("put", META_PATH), ("delete", META_PATH), ("patch", TWILIO_PATH), ("get", TWILIO_PATH),
])
def test_wrong_method_is_405(client, method, path):
    assert getattr(client, method)(path).status_code == 405


@pytest.mark.parametrize("payload", [
    [], "hello", 42, {}, {"object": "page", "entry": "nope"},
    {"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"text": {"body": "no id"}}]}}]}]},
    {"entry": [{"changes": [{"value": {"messages": [{"id": "x" * 300, "from": "9779841234567"}]}}]}]},
    {"entry": [{"changes": [{"field": "account_update", "value": {"event": "VERIFIED"}}]}]},
    {"entry": [{"changes": [{"value": {"statuses": [{"id": "wamid.s", "status": "exploded"}]}}]}]},
])
def test_well_formed_unknown_shapes_get_a_polite_200_and_nothing_stored(any_app, payload):
    assert post_meta(any_app.test_client(), payload).status_code == 200
    assert rows(any_app, "SELECT count(*) FROM webhook_messages") == [(0,)]
    assert rows(any_app, "SELECT is_valid FROM webhook_signature_log") == [(True,)]


def test_twilio_form_without_a_message_gets_a_polite_200(app):
    assert post_twilio(app.test_client(), {"Foo": "bar"}).status_code == 200
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(0,)]


# --- handshake ----------------------------------------------------------------------------

def test_meta_handshake_echoes_the_challenge_as_plain_text(client):
    response = client.get(META_PATH, query_string={
        "hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.data == b"1158201444"
    assert response.mimetype == "text/plain"


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
    {"hub.verify_token": "test-verify-token", "hub.challenge": "1"},
    {},
])
def test_meta_handshake_with_a_wrong_token_or_mode_is_403(client, query):
    assert client.get(META_PATH, query_string=query).status_code == 403


# --- forged floods and metrics ------------------------------------------------------------

def test_invalid_requests_from_one_ip_fold_into_one_row_then_get_429(app, monkeypatch):
    monkeypatch.setattr(audit, "INVALID_PER_IP", RateLimitItemPerMinute(4))
    client = app.test_client()
    bad = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    responses = [client.post(META_PATH, data=b"{}", headers=bad) for _ in range(7)]
    assert [r.status_code for r in responses] == [403] * 4 + [429] * 3
    assert responses[-1].headers["Retry-After"] == "60"
    assert rows(app, "SELECT client_ip, request_count FROM webhook_signature_log") == [("127.0.0.1", 4)]
    with app.app_context():
        metrics.flush()
    assert rows(app, "SELECT client_ip, is_valid, request_count FROM webhook_signature_log") == [
        ("127.0.0.1", 0, 7)]


def test_response_times_are_seen_at_once_and_rolled_up_once(app, queue):
    client = app.test_client()
    for i in range(3):
        assert post_meta(client, meta_text_payload("1 kg dal", f"wamid.t{i}")).status_code == 200
    since = utcnow() - timedelta(hours=1)

    def summary() -> tuple[int, float]:
        with app.app_context():
            (row,) = stats.performance_report(since)[1]
        return row["request_count"], row["success_rate"]

    assert summary() == (3, 100.0)  # no worker has flushed anything: the audit rows are read
    with app.app_context():
        rollup.roll_up(utcnow() + timedelta(minutes=5))
    ((count, ok, histogram),) = rows(app, "SELECT request_count, success_count, histogram "
                                          "FROM webhook_performance_metrics")
    assert (count, ok, sum(json.loads(histogram))) == (3, 3, 3)
    assert summary() == (3, 100.0)
    times = rows(app, "SELECT response_time_ms FROM webhook_messages")
    assert len(times) == 3 and all(t > 0 for (t,) in times)


def test_hostile_but_valid_content_is_stored_safely(any_app, queue):
    payload = meta_text_payload("5 kg chini\x00 \ud800 ok", "wamid.odd")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages[0].update(timestamp="99999999999999999999", extra={"k\x00": ["\udfff", 1e308, -(2**70)]})
    messages.append(dict(messages[0], id="wamid.odd2", type="x" * 40, timestamp="not a time"))
    body = json.dumps(payload).encode()  # ASCII escapes keep the lone surrogates in the JSON text
    signed, headers = signed_meta(body)
    assert any_app.test_client().post(META_PATH, data=signed, headers=headers).status_code == 200
    stored = rows(any_app, "SELECT message_id, message_text, message_type, status FROM webhook_messages "
                           "ORDER BY message_id")
    # Neither timestamp can be read: both are stale (replayable by ops), nothing is queued.
    assert stored == [("wamid.odd", "5 kg chini \ufffd ok", "text", "stale"),
                      ("wamid.odd2", None, "unsupported", "stale")]
    assert queue() == []
