"""Helpers for the message-kind tests: fixtures of every kind posted as signed webhooks."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from sqlalchemy import select, text

from khaacho.extensions import db
from khaacho.models import Shop, WebhookMessage
from tests.support import META_PATH, META_TEXT, TWILIO_PATH, signed_meta, signed_twilio

KINDS_DIR = Path(__file__).resolve().parent / "data" / "message-kinds"
META_KINDS = json.loads((KINDS_DIR / "meta.json").read_text())
TWILIO_KINDS = json.loads((KINDS_DIR / "twilio.json").read_text())
TWILIO_URL = "http://localhost" + TWILIO_PATH

# kind fixture -> (stored message_type, final status, reply kind or None, a phrase of error_message or None)
META_EXPECTED = {
    "text": ("text", "completed", "confirmation", None),
    "reply_with_context": ("text", "completed", "confirmation", None),
    "username_text": ("text", "completed", "confirmation", None),
    "button_reply": ("button", "completed", None, "'confirm:41:v1': not one of our buttons"),
    "list_reply": ("list", "completed", None, "'pick:41:2:DAL-MUGI': not one of our buttons"),
    "template_quick_reply": ("quick_reply", "completed", "help", None),  # no order 41 of this shop to repeat
    "catalog_cart": ("cart", "completed", "confirmation", None),
    "location": ("location", "completed", "acknowledgement", None),
    "image": ("image", "needs_attention", "acknowledgement",
              "photo 1480123456789012 (image/jpeg), caption 'yo list'"),
    "voice_note": ("voice", "needs_attention", "acknowledgement", "voice note 1480123456789013"),
    "audio": ("audio", "needs_attention", "acknowledgement", "audio 1480123456789014"),
    "video": ("video", "needs_attention", "acknowledgement", "video 1480123456789015"),
    "document": ("document", "needs_attention", "acknowledgement", "document 1480123456789016"),
    "sticker": ("sticker", "ignored", None, "sticker"),
    "edit": ("edit", "completed", None, "edit of wamid.K01: it made no order"),
    "revoke": ("delete", "completed", None, "deletion of wamid.K01: it made no order"),
    "reaction": ("reaction", "ignored", None, "reaction 👍 on wamid.CONFIRMATION1"),
    "group_text": ("text", "ignored", None, "group message"),
    "with_errors": ("unsupported", "ignored", None,
                    "provider error: 131051 Message type unknown: Message type is currently not supported."),
    "interactive_with_errors": ("list", "ignored", None, "provider error: 131060 Interactive message error"),
    "flow_reply": ("unsupported", "ignored", None, "unsupported message (interactive nfm_reply)"),
    "contacts_card": ("unsupported", "ignored", None, "unsupported message (contacts)"),
    "system_changed_number": ("system", "ignored", None, "system message (user_changed_number)"),
    "short_number": ("text", "completed", "confirmation", None),
}
TWILIO_EXPECTED = {
    "text": ("text", "completed", "confirmation", None),
    "reply_with_context": ("text", "completed", "confirmation", None),
    "button": ("button", "completed", None, "'confirm:41:v1': not one of our buttons"),
    "list_reply": ("list", "completed", None, "'pick:41:2:DAL-MUGI': not one of our buttons"),
    "location": ("location", "completed", "acknowledgement", None),
    "image": ("image", "needs_attention", "acknowledgement", "photo https://api.twilio.com/"),
    "voice_note": ("audio", "needs_attention", "acknowledgement", "/Media/MEK07 (audio/ogg)"),
    "video": ("video", "needs_attention", "acknowledgement", "/Media/MEK08 (video/mp4)"),
    "document": ("document", "needs_attention", "acknowledgement", "/Media/MEK09 (application/pdf)"),
    "media_without_type": ("image", "needs_attention", "acknowledgement", "caption '5 kg chini'"),
    "sticker": ("sticker", "ignored", None, "sticker"),
    "unsupported": ("unsupported", "ignored", None, "unsupported message (unknown)"),
    "short_number": ("text", "completed", "confirmation", None),
}


def meta_kind(name: str, **message_fields) -> dict:
    """The Meta webhook of fixture ``name``, its timestamps set to now (inside the replay window)."""
    payload = copy.deepcopy(META_TEXT)
    value = payload["entry"][0]["changes"][0]["value"]
    fixture = copy.deepcopy(META_KINDS[name])
    value.pop("contacts")
    value.update(fixture)
    for message in value["messages"]:
        message.update(timestamp=str(int(time.time())), **message_fields)
    return payload


def twilio_kind(name: str, **fields) -> dict:
    """The Twilio form of fixture ``name``: the common fields with the kind's own."""
    return {**TWILIO_KINDS["_common"], **TWILIO_KINDS[name], **fields}


def post_kind(app, source: str, name: str, **fields) -> int:
    """Post fixture ``name`` as a signed webhook (tasks held); the stored row's id."""
    client = app.test_client()
    if source == "whatsapp":
        body, headers = signed_meta(meta_kind(name, **fields))
        response = client.post(META_PATH, data=body, headers=headers)
        message_id = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    else:
        form = twilio_kind(name, **fields)
        response = client.post(TWILIO_PATH, data=form, headers=signed_twilio(TWILIO_URL, form))
        message_id = form["MessageSid"]
    assert response.status_code == 200
    with app.app_context():
        return db.session.scalar(select(WebhookMessage.id).where(WebhookMessage.message_id == message_id))


def shops(app) -> list[tuple]:
    """Every shop as (phone, user id, profile name, latitude, longitude, address)."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(Shop.phone_number, Shop.user_id, Shop.profile_name, Shop.latitude, Shop.longitude,
                   Shop.address).order_by(Shop.id))]


def audit_reasons(app) -> list[str | None]:
    with app.app_context():
        found = db.session.execute(text("SELECT reason FROM webhook_signature_log ORDER BY id"))
        return [reason for (reason,) in found]
