"""Signature checks: Meta's HMAC over the raw body, Twilio's validator on the public URL."""

from __future__ import annotations

import json

import pytest
from twilio.request_validator import RequestValidator

from khaacho.webhooks import meta, twilio
from tests.intake_support import hold_tasks_of_test_app
from tests.support import (
    META_PATH,
    TWILIO_PATH,
    meta_signature,
    meta_text_payload,
    signed_meta,
    signed_twilio,
)

SECRET = "test-app-secret"
DEVANAGARI_BODY = json.dumps(meta_text_payload("चामल २५ केजी 🙏🏽 दाल ५ kg", "wamid.dev1"),
                             ensure_ascii=False).encode()

# Twilio's published example (TwilioDevEd/api-snippets, security/signature_validation).
TWILIO_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
                     "From": "+14158675310", "To": "+18005551212"}
TWILIO_DOC_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="


@pytest.fixture
def queue(request, monkeypatch):
    """Queued message ids, held in memory instead of processed inline."""
    return hold_tasks_of_test_app(request, monkeypatch)


# --- Meta ---------------------------------------------------------------------------------

def test_meta_signature_of_the_raw_body_is_accepted():
    body = b'{"object":  "whatsapp_business_account" ,"entry":[]}'
    assert meta.signature_problem(body, meta_signature(body), [SECRET]) is None


@pytest.mark.parametrize("header, reason", [
    (None, "missing signature"),
    ("", "missing signature"),
    ("sha1=abcdef", "malformed signature"),
    ("sha256=" + "0" * 64, "invalid signature"),
    ("sha256=not-hex-at-all-é", "invalid signature"),
])
def test_meta_bad_or_missing_signature_is_refused_with_a_reason(header, reason):
    assert meta.signature_problem(b"{}", header, [SECRET]) == reason


def test_meta_signature_with_another_secret_fails():
    body = b'{"entry": []}'
    assert meta.signature_problem(body, meta_signature(body, "someone-else"), [SECRET]) == "invalid signature"


def test_meta_rotation_accepts_every_configured_secret():
    body = b'{"entry": []}'
    secrets = ["new-secret", "old-secret"]
    assert meta.signature_problem(body, meta_signature(body, "old-secret"), secrets) is None
    assert meta.signature_problem(body, meta_signature(body, "new-secret"), secrets) is None
    assert meta.signature_problem(body, meta_signature(body, "retired"), secrets) == "invalid signature"


def test_meta_without_configured_secret_nothing_verifies():
    body = b"{}"
    assert meta.signature_problem(body, meta_signature(body), []) == "no app secret configured"


def test_meta_uppercase_hex_digest_is_accepted():
    body = b'{"entry": []}'
    header = "sha256=" + meta_signature(body)[len("sha256="):].upper()
    assert meta.signature_problem(body, header, [SECRET]) is None


def test_meta_devanagari_and_emoji_body_verifies_over_its_exact_bytes():
    assert meta.signature_problem(DEVANAGARI_BODY, meta_signature(DEVANAGARI_BODY), [SECRET]) is None
    # Meta escapes non-ASCII as \uXXXX: the same JSON, other bytes, its own signature.
    escaped = json.dumps(json.loads(DEVANAGARI_BODY), ensure_ascii=True).encode()
    assert escaped != DEVANAGARI_BODY
    assert meta.signature_problem(escaped, meta_signature(escaped), [SECRET]) is None
    assert meta.signature_problem(escaped, meta_signature(DEVANAGARI_BODY), [SECRET]) == "invalid signature"


def test_meta_endpoint_verifies_raw_bytes_not_reserialised_json(client, queue):
    raw = b'{ "object" : "whatsapp_business_account",   "entry" : [ ] }'
    reserialised = json.dumps(json.loads(raw)).encode()
    assert client.post(META_PATH, data=raw, headers={
        "X-Hub-Signature-256": meta_signature(raw)}).status_code == 200
    assert client.post(META_PATH, data=raw, headers={
        "X-Hub-Signature-256": meta_signature(reserialised)}).status_code == 403


def test_meta_endpoint_stores_devanagari_text_intact(client, app, queue):
    body, headers = signed_meta(DEVANAGARI_BODY)
    assert client.post(META_PATH, data=body, headers=headers).status_code == 200
    from khaacho.extensions import db
    from khaacho.models import WebhookMessage

    with app.app_context():
        stored = db.session.execute(db.select(WebhookMessage.message_text)).scalar_one()
    assert stored == "चामल २५ केजी 🙏🏽 दाल ५ kg"


@pytest.mark.parametrize("header, status", [(None, 401), ("sha256=" + "a" * 64, 403)])
def test_meta_endpoint_refuses_unsigned_and_forged(client, header, status):
    headers = {"X-Hub-Signature-256": header} if header else {}
    assert client.post(META_PATH, data=DEVANAGARI_BODY, headers=headers).status_code == status


# --- Twilio -------------------------------------------------------------------------------

def test_twilio_published_test_vector():
    validator = RequestValidator("12345")
    assert validator.compute_signature(TWILIO_DOC_URL, TWILIO_DOC_PARAMS) == TWILIO_DOC_SIGNATURE
    assert twilio.signature_problem(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, TWILIO_DOC_SIGNATURE, "12345") is None


def test_twilio_published_vector_fails_with_a_changed_parameter():
    params = dict(TWILIO_DOC_PARAMS, Digits="1235")
    problem = twilio.signature_problem(TWILIO_DOC_URL, params, TWILIO_DOC_SIGNATURE, "12345")
    assert problem == "invalid signature"


@pytest.mark.parametrize("url", [
    "https://evil.example.com/myapp.php?foo=1&bar=2",
    "https://mycompany.com/other.php?foo=1&bar=2",
    "http://mycompany.com/myapp.php?foo=1&bar=2",
    "https://mycompany.com/myapp.php?foo=1&bar=3",
])
def test_twilio_signature_made_for_another_url_fails(url):
    problem = twilio.signature_problem(url, TWILIO_DOC_PARAMS, TWILIO_DOC_SIGNATURE, "12345")
    assert problem == "invalid signature"


def test_twilio_missing_signature_or_token():
    assert twilio.signature_problem(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, None, "12345") == "missing signature"
    assert twilio.signature_problem(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, TWILIO_DOC_SIGNATURE, None) \
        == "no auth token configured"


def test_twilio_hmac_sha256_when_the_settings_header_names_it():
    validator = RequestValidator("shared-key-secret")
    signature = validator.compute_signature(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, "HMAC_SHA256")
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert twilio.signature_problem(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, signature, "shared-key-secret",
                                    settings) is None
    # The same signature presented as legacy SHA-1 does not verify.
    assert twilio.signature_problem(TWILIO_DOC_URL, TWILIO_DOC_PARAMS, signature, "shared-key-secret") \
        == "invalid signature"


def _twilio_form(body: str = "चामल २५ केजी 🙏") -> dict:
    return {"MessageSid": "SM0123456789abcdef0123456789abcdef", "From": "whatsapp:+9779841234567",
            "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0"}


def test_twilio_endpoint_checks_the_public_url_rebuilt_through_the_proxy(client, queue):
    public = "https://khaacho.example.com" + TWILIO_PATH
    form = _twilio_form()
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "khaacho.example.com",
             "X-Forwarded-For": "203.0.113.9"}
    response = client.post(TWILIO_PATH, data=form, headers={**proxy, **signed_twilio(public, form)})
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert b"<Response/>" in response.data


@pytest.mark.parametrize("signed_for", [
    "https://attacker.example.com" + TWILIO_PATH,
    "https://khaacho.example.com/api/v1/whatsapp-hardened/other",
    "http://khaacho.example.com" + TWILIO_PATH,
])
def test_twilio_endpoint_refuses_a_signature_for_another_host_or_path(client, signed_for):
    form = _twilio_form()
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "khaacho.example.com"}
    response = client.post(TWILIO_PATH, data=form, headers={**proxy, **signed_twilio(signed_for, form)})
    assert response.status_code == 403


def test_twilio_endpoint_refuses_a_tampered_body(client):
    url = "http://localhost" + TWILIO_PATH
    headers = signed_twilio(url, _twilio_form())
    assert client.post(TWILIO_PATH, data=_twilio_form("100 kg chini"), headers=headers).status_code == 403
