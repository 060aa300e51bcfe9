"""Webhook edge cases: poison JSON values, missing timestamps, Twilio replays after cleanup,
junk signature settings, and chunked bodies past the limit."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from limits import RateLimitItemPerMinute
from sqlalchemy import text

from khaacho.extensions import db
from khaacho.models import TwilioTombstone, WebhookMessage
from khaacho.processing.cleanup import cleanup
from khaacho.tombstones import sid_hash
from khaacho.webhooks import audit, metrics
from tests.intake_support import hold_tasks_of_test_app
from tests.processing_support import add_message
from tests.support import META_PATH, TWILIO_PATH, meta_text_payload, signed_meta, signed_twilio

TWILIO_URL = "http://localhost" + TWILIO_PATH
MIB = 1024 * 1024


@pytest.fixture
def queue(request, monkeypatch):
    """Queued message ids, held in memory instead of processed inline."""
    return hold_tasks_of_test_app(request, monkeypatch)


def rows(app, sql: str) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(text(sql))]


def poisoned(message_id: str, text_body: str) -> str:
    """A Meta message as JSON text with values JSON storage cannot hold: ±1e400, NUL, lone surrogates."""
    message = meta_text_payload(text_body, message_id)["entry"][0]["changes"][0]["value"]["messages"][0]
    raw = json.dumps(message)
    return raw[:-1] + (', "price": 1e400, "debt": -1e400, "ok": 2.5, "nul": "a\\u0000b",'
                       ' "half": "x\\ud800y", "k\\u0000ey": 1}')


@pytest.mark.parametrize("count", [1, 3])  # one message (PostgreSQL's single statement) and a batch
def test_a_batch_with_values_json_cannot_store_is_stored_on_both_databases(any_app, queue, count):
    messages = ", ".join(poisoned(f"wamid.POISON{i}", f"{i + 1} kg chini") for i in range(count))
    envelope = json.dumps(meta_text_payload("x", "x"))
    body = envelope.replace(envelope[envelope.index('"messages": [') :].split("]", 1)[0] + "]",
                            f'"messages": [{messages}]').encode()
    body, headers = signed_meta(body)
    for _ in range(2):  # a retry is a duplicate, not another failure
        assert any_app.test_client().post(META_PATH, data=body, headers=headers).status_code == 200
    with any_app.app_context():
        stored = db.session.scalars(db.select(WebhookMessage).order_by(WebhookMessage.message_id)).all()
        assert [m.status for m in stored] == ["queued"] * count
        payload = stored[0].payload
    assert (payload["price"], payload["debt"], payload["ok"]) == ("1e400", "-1e400", 2.5)
    assert payload["nul"] == "ab" and payload["half"] == "x\ufffdy" and payload["key"] == 1
    assert len(queue()) == count


def test_a_lone_nan_is_still_malformed(app):
    body, headers = signed_meta(b'{"entry": [NaN]}')
    assert app.test_client().post(META_PATH, data=body, headers=headers).status_code == 400


@pytest.mark.parametrize("timestamp", [None, "", "soon", "1.7e9", True, "99999999999999", -5, [1]])
def test_a_meta_message_without_a_readable_timestamp_is_stale(any_app, queue, timestamp):
    payload = meta_text_payload("5 kg chini", "wamid.NOTIME")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    if timestamp is None:
        del message["timestamp"]
    else:
        message["timestamp"] = timestamp
    body, headers = signed_meta(payload)
    assert any_app.test_client().post(META_PATH, data=body, headers=headers).status_code == 200
    assert rows(any_app, "SELECT status, message_timestamp FROM webhook_messages") == [("stale", None)]
    assert queue() == []


def test_a_twilio_replay_after_the_retention_cleanup_is_stale(any_app, queue):
    old_id = add_message(any_app, "5 kg chini", source="twilio", status="completed", age=timedelta(days=40))
    with any_app.app_context():
        sid = db.session.get(WebhookMessage, old_id).message_id
        cleanup(days=30, pause=0)
        assert db.session.get(WebhookMessage, old_id) is None
        assert db.session.get(TwilioTombstone, sid_hash(sid)) is not None
    client = any_app.test_client()
    replay = {"MessageSid": sid, "From": "whatsapp:+9779841234567", "Body": "5 kg chini"}
    fresh = {**replay, "MessageSid": "SM" + "f" * 32}
    for form in (replay, fresh):
        assert client.post(TWILIO_PATH, data=form, headers=signed_twilio(TWILIO_URL, form)).status_code == 200
    assert sorted(rows(any_app, "SELECT message_id, status FROM webhook_messages")) == [
        (sid, "stale"), (fresh["MessageSid"], "queued")]
    assert len(queue()) == 1
    with any_app.app_context():  # the stale copy is deleted again later without a second tombstone error
        db.session.execute(text("UPDATE webhook_messages SET created_at = '2000-01-01', "
                                "status = 'completed'"))
        db.session.commit()
        cleanup(days=30, pause=0)
        assert db.session.query(TwilioTombstone).count() == 2


@pytest.mark.parametrize(("header", "value", "reason"), [
    ("X-Twilio-Webhooks-Signature-Settings", "algorithm=" + "A" * 2048, "unsupported signature algorithm"),
    ("X-Twilio-Signature", "A" * 2048, "invalid signature"),
])
def test_junk_twilio_signature_headers_are_refused_without_logging_them(app, caplog, monkeypatch,
                                                                         header, value, reason):
    monkeypatch.setattr(audit, "INVALID_PER_IP", RateLimitItemPerMinute(4))
    form = {"MessageSid": "SM" + "1" * 32, "From": "whatsapp:+9779841234567", "Body": "hi"}
    client = app.test_client()
    headers = {**signed_twilio(TWILIO_URL, form), header: value}
    with caplog.at_level(logging.DEBUG):
        codes = [client.post(TWILIO_PATH, data=form, headers=headers).status_code for _ in range(7)]
        with app.app_context():
            metrics.flush()  # the 429s' counts join the folded row
    assert codes == [403] * 4 + [429] * 3
    assert not [r for r in caplog.records if "AAAAAAAA" in r.getMessage()]
    assert rows(app, "SELECT reason, request_count FROM webhook_signature_log") == [(reason, 7)]


@pytest.mark.parametrize(("size", "status"), [(4 * MIB + 1, 413), (4 * MIB, 200)])
def test_a_signed_chunked_body_past_4_mib_is_413_not_403(app, queue, size, status):
    payload = json.dumps(meta_text_payload("5 kg chini", "wamid.BIG")).encode()
    body = payload[:-1] + b" " * (size - len(payload)) + b"}"
    _, headers = signed_meta(body)
    response = app.test_client().post(
        META_PATH, input_stream=io.BytesIO(body), headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})  # as gunicorn marks a chunked body
    assert response.status_code == status
    if status == 413:
        assert rows(app, "SELECT reason FROM webhook_signature_log") == [("body too large",)]


def test_a_chunked_twilio_form_past_4_mib_is_413_and_a_small_one_is_read(app, queue):
    client = app.test_client()
    chunked = {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"}
    big = b"Body=" + b"a" * (4 * MIB)
    response = client.post(TWILIO_PATH, input_stream=io.BytesIO(big),
                           headers={**chunked, "X-Twilio-Signature": "x"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    form = {"MessageSid": "SM" + "2" * 32, "From": "whatsapp:+9779841234567", "Body": "5 kg chini"}
    response = client.post(TWILIO_PATH, input_stream=io.BytesIO(urlencode(form).encode()),
                           headers={**chunked, **signed_twilio(TWILIO_URL, form)},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200
    assert rows(app, "SELECT message_text FROM webhook_messages") == [("5 kg chini",)]
