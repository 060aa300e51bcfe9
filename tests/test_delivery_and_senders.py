"""Delivery statuses never hide a failure; every E.164 sender is kept and nothing is dropped silently."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage
from tests.intake_support import hold_tasks_of_test_app
from tests.kinds_support import TWILIO_URL, audit_reasons, meta_kind, post_kind, twilio_kind
from tests.support import META_PATH, TWILIO_PATH, sample, signed_meta, signed_twilio


@pytest.fixture
def queue(request, monkeypatch):
    return hold_tasks_of_test_app(request, monkeypatch)


def rows(app, sql: str) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(text(sql))]


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


def _post_meta_status(client, provider_message_id: str, status: str, error_code: int | None = None) -> None:
    payload = sample("meta-statuses.json")
    value = payload["entry"][0]["changes"][0]["value"]
    template = value["statuses"][1 if error_code else 0]
    value["statuses"] = [dict(template, id=provider_message_id, status=status)]
    body, headers = signed_meta(payload)
    assert client.post(META_PATH, data=body, headers=headers).status_code == 200


def _delivery(app) -> list[tuple]:
    return rows(app, "SELECT delivery_status, delivery_error FROM outbound_messages")


def test_a_failure_after_delivered_is_recorded_and_a_later_read_does_not_erase_it(any_app):
    _outbound(any_app, "wamid.OUT1")
    client = any_app.test_client()
    _post_meta_status(client, "wamid.OUT1", "delivered")
    assert _delivery(any_app) == [("delivered", None)]

    _post_meta_status(client, "wamid.OUT1", "failed", error_code=131047)
    [(status, error)] = _delivery(any_app)
    assert status == "failed" and error.startswith("131047 Re-engagement message: Message failed to send")

    for later in ("read", "delivered", "sent"):
        _post_meta_status(client, "wamid.OUT1", later)
    assert _delivery(any_app) == [(status, error)]


def test_played_is_accepted_after_read(app):
    _outbound(app, "wamid.VOICE1")
    client = app.test_client()
    for status in ("sent", "read", "played", "read"):
        _post_meta_status(client, "wamid.VOICE1", status)
    assert _delivery(app) == [("played", None)]


def test_a_twilio_failure_after_delivered_is_kept(app):
    form = sample("twilio-status.form.json")
    _outbound(app, form["MessageSid"], provider="twilio")
    client = app.test_client()
    for status, code in (("delivered", ""), ("undelivered", "63024"), ("read", "")):
        update = dict(form, MessageStatus=status, ErrorCode=code)
        response = client.post(TWILIO_PATH, data=update, headers=signed_twilio(TWILIO_URL, update))
        assert response.status_code == 200
    assert _delivery(app) == [("undelivered", "63024")]


@pytest.mark.parametrize("source, name, phone", [
    ("whatsapp", "short_number", "+6834001"), ("twilio", "short_number", "+6834001"),
])
def test_a_seven_digit_e164_number_is_kept(any_app, queue, source, name, phone):
    row_id = post_kind(any_app, source, name)
    assert rows(any_app, "SELECT id, phone_number, sender_id, status FROM webhook_messages") == [
        (row_id, phone, phone, "queued")]
    assert queue() == [row_id]


def test_a_meta_message_from_an_impossible_number_is_not_stored_but_audited_with_why(any_app, queue):
    payload = meta_kind("text")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages[0].pop("from_user_id")
    messages.append(dict(messages[0], id="wamid.BAD16", **{"from": "1234567890123456"}))
    payload["entry"][0]["changes"][0]["value"]["contacts"] = []
    body, headers = signed_meta(payload)
    assert any_app.test_client().post(META_PATH, data=body, headers=headers).status_code == 200

    assert rows(any_app, "SELECT message_id FROM webhook_messages") == [("wamid.K01",)]
    assert audit_reasons(any_app) == [
        "not stored: message wamid.BAD16: sender '1234567890123456' is not an E.164 number or user id"]
    assert len(queue()) == 1


def test_a_twilio_message_from_an_impossible_number_is_audited_with_why(app, queue):
    form = twilio_kind("text", From="whatsapp:+12")
    response = app.test_client().post(TWILIO_PATH, data=form, headers=signed_twilio(TWILIO_URL, form))
    assert response.status_code == 200
    assert rows(app, "SELECT count(*) FROM webhook_messages") == [(0,)]
    assert audit_reasons(app) == ["not stored: message SMK01: sender 'whatsapp:+12' is not an E.164 number"]
