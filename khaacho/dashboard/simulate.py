"""Demo traffic: realistic, correctly signed Meta and Twilio webhooks for a running instance."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

META_PATH = "/api/v1/whatsapp-hardened/webhook"
TWILIO_PATH = "/api/v1/whatsapp-hardened/twilio/webhook"

ORDERS = (
    "10 kg chini ra 5 kg dal",
    "5 kg chini, 2 packet wai wai",
    "1) basmati 5kg\n2) sunflower oil 2 ltr",
    "pls send 2 dozen eggs",
    "Noodles x 30",
    "salt - 10 pkt\nsoap - 6 pcs",
    "250 g besar",
    "चिया पत्ती २ प्याकेट",
    "चामल २५ केजी",
    "चिनी ५ केजी र दाल २ केजी",
    "namaste, aaja pasal kati baje khulcha?",
)
SHOPS = (
    ("9779841234567", "Hari Kirana Pasal"),
    ("9779857654321", "Sita General Store"),
    ("9779801122334", "Bhaktapur Mart"),
    ("9779812345678", "Pokhara Kirana"),
    ("9779860011223", "Ram Suppliers"),
    ("9779818899001", "Janakpur Traders"),
)
# One cycle of the mix; a burst from one shop is spliced into the middle of the run.
PATTERN = ("order", "order", "twilio", "duplicate", "order", "forged", "order", "twilio_status",
           "order", "meta_status")
BURST_MAX = 12


@dataclass(frozen=True)
class Delivery:
    """One HTTP request to send: what it shows, where it goes, and its exact bytes."""

    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    note: str


def kinds(count: int) -> list[str]:
    """The kind of each of ``count`` requests: the mix repeated, with a burst in the middle."""
    plan = [PATTERN[i % len(PATTERN)] for i in range(count)]
    burst = min(BURST_MAX, count // 4)
    start = (count - burst) // 2
    plan[start:start + burst] = ["burst"] * burst
    return plan


def _meta_body(value: dict) -> bytes:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "103984562201876", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "9779801000000", "phone_number_id": "112233445566778"},
            **value,
        }}
    ]}]}
    return json.dumps(payload, ensure_ascii=False).encode()


def _meta_message(sender: tuple[str, str], text: str, message_id: str) -> bytes:
    phone, name = sender
    return _meta_body({
        "contacts": [{"profile": {"name": name}, "wa_id": phone}],
        "messages": [{"from": phone, "id": message_id, "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": text}}],
    })


def _wamid() -> str:
    return "wamid.SIM" + uuid.uuid4().hex.upper()


class TrafficBuilder:
    """Builds each kind of request, signed with the instance's own secrets."""

    def __init__(self, base_url: str, meta_secret: str, twilio_token: str | None,
                 twilio_number: str, seed: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.meta_secret = meta_secret
        self.twilio = RequestValidator(twilio_token) if twilio_token else None
        self.twilio_number = twilio_number
        self.rng = random.Random(seed)
        self.burst_shop = self.rng.choice(SHOPS)
        self.sent: list[Delivery] = []

    def _signed_meta(self, kind: str, body: bytes, note: str, secret: str | None = None) -> Delivery:
        digest = hmac.new((secret or self.meta_secret).encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + digest}
        return Delivery(kind, META_PATH, body, headers, note)

    def _twilio_form(self, kind: str, params: dict[str, str], note: str) -> Delivery:
        url = self.base_url + TWILIO_PATH
        signature = self.twilio.compute_signature(url, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return Delivery(kind, TWILIO_PATH, urlencode(params).encode(), headers, note)

    def build(self, kind: str) -> Delivery:
        """The next request of this kind (Twilio kinds fall back to Meta orders without a token)."""
        if kind in ("twilio", "twilio_status") and self.twilio is None:
            kind = "order"
        if kind == "duplicate":
            originals = [d for d in self.sent if d.kind in ("order", "burst")]
            if originals:
                original = self.rng.choice(originals)
                delivery = Delivery("duplicate", original.path, original.body, original.headers,
                                    "redelivery of " + original.note)
                self.sent.append(delivery)
                return delivery
            kind = "order"
        delivery = getattr(self, "_" + kind)()
        self.sent.append(delivery)
        return delivery

    def _order(self) -> Delivery:
        shop, text = self.rng.choice(SHOPS), self.rng.choice(ORDERS)
        return self._signed_meta("order", _meta_message(shop, text, _wamid()), f"+{shop[0]}: {text!r}")

    def _burst(self) -> Delivery:
        text = self.rng.choice(ORDERS)
        body = _meta_message(self.burst_shop, text, _wamid())
        return self._signed_meta("burst", body, f"+{self.burst_shop[0]}: {text!r}")

    def _forged(self) -> Delivery:
        shop = self.rng.choice(SHOPS)
        body = _meta_message(shop, "100 kg chini free", _wamid())
        return self._signed_meta("forged", body, "signed with the wrong secret", secret="not-the-app-secret")

    def _meta_status(self) -> Delivery:
        shop = self.rng.choice(SHOPS)
        body = _meta_body({"statuses": [{"id": _wamid(), "status": "delivered",
                                         "timestamp": str(int(time.time())), "recipient_id": shop[0]}]})
        return self._signed_meta("meta_status", body, f"delivered to +{shop[0]}")

    def _twilio(self) -> Delivery:
        (phone, name), text = self.rng.choice(SHOPS), self.rng.choice(ORDERS)
        sid = "SM" + uuid.uuid4().hex
        params = {
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32, "From": f"whatsapp:+{phone}", "To": self.twilio_number,
            "Body": text, "NumMedia": "0", "NumSegments": "1", "ProfileName": name, "WaId": phone,
            "SmsStatus": "received", "ApiVersion": "2010-04-01",
        }
        return self._twilio_form("twilio", params, f"+{phone}: {text!r}")

    def _twilio_status(self) -> Delivery:
        phone = self.rng.choice(SHOPS)[0]
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered",
                  "AccountSid": "AC" + "0" * 32, "From": self.twilio_number, "To": f"whatsapp:+{phone}",
                  "ChannelPrefix": "whatsapp", "ErrorCode": ""}
        return self._twilio_form("twilio_status", params, f"delivered to +{phone}")
