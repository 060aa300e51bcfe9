"""Demo traffic: realistic, correctly signed Meta and Twilio webhooks for a running instance.

Given a ``lookup`` of what the instance answered (``flask webhooks simulate`` reads its
database), orders become whole conversations: the shop taps Confirm, Change or Cancel, picks a
row of a clarification list, types ``1``/``3`` or a number on Twilio, or sends a follow-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable
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
    "chini ko rate?",
    "pahile jastai",
)
FOLLOW_UPS = ("2 packet wai wai pani", "chini 20 kg", "1 litre tori tel")
# What the instance answered a message (provider, message id): the reply's kind, text and buttons
# or list; None while it has not answered yet.
Lookup = Callable[[str, str], tuple[str, str, dict | None] | None]
ASKING = ("confirmation", "clarification")  # reply kinds that wait for the shop's answer
SHOPS = (
    ("9779841234567", "Hari Kirana Pasal"),
    ("9779857654321", "Sita General Store"),
    ("9779801122334", "Bhaktapur Mart"),
    ("9779812345678", "Pokhara Kirana"),
    ("9779860011223", "Ram Suppliers"),
    ("9779818899001", "Janakpur Traders"),
)
# One cycle of the mix; a burst from one shop is spliced into the middle of the run. Each
# "kind" slot sends the next of MESSAGE_KINDS, so a run of 60 sends every kind of message.
PATTERN = ("order", "kind", "twilio", "kind", "duplicate", "kind", "order", "kind", "forged", "kind",
           "twilio_status", "kind", "meta_status", "kind")
BURST_MAX = 12


USER_ID = "NP.13491208655302741918"
MEDIA_URL = "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/{sid}/Media/ME1"
# Each Meta kind as the fields of its value.messages[] item (given the id of an earlier message).
META_KINDS = {
    "cart": lambda _: {"type": "order", "order": {"catalog_id": "1234567890", "text": "", "product_items": [
        {"product_retailer_id": "SUGAR", "quantity": 5, "item_price": 110, "currency": "NPR"},
        {"product_retailer_id": "WAI-WAI", "quantity": 10, "item_price": 20, "currency": "NPR"},
        {"product_retailer_id": "NOODLE-OLD", "quantity": 2, "item_price": 15, "currency": "NPR"}]}},
    "location": lambda _: {"type": "location", "location": {
        "latitude": 27.6939, "longitude": 85.2946, "name": "Salt Trading Corporation Ltd",
        "address": "Kalimati, Kathmandu 44600"}},
    "image": lambda _: {"type": "image", "image": {"caption": "yo list", "mime_type": "image/jpeg",
                                                   "sha256": "b1c2", "id": "1480123456789012"}},
    "voice_note": lambda _: {"type": "audio", "audio": {
        "mime_type": "audio/ogg; codecs=opus", "sha256": "c2d3", "id": "1480123456789013", "voice": True}},
    "button_reply": lambda earlier: {"type": "interactive", "context": {"id": earlier}, "interactive": {
        "type": "button_reply", "button_reply": {"id": "confirm", "title": "Confirm"}}},
    "list_reply": lambda earlier: {"type": "interactive", "context": {"id": earlier}, "interactive": {
        "type": "list_reply",
        "list_reply": {"id": "DAL-MUGI", "title": "Moong Dal", "description": "NPR 200 / kg"}}},
    "quick_reply": lambda earlier: {"type": "button", "context": {"id": earlier},
                                    "button": {"payload": "order-again", "text": "Order again"}},
    "edit": lambda earlier: {"type": "edit", "edit": {"original_message_id": earlier, "message": {
        "type": "text", "text": {"body": "10 kg chini"}}}},
    "revoke": lambda earlier: {"type": "revoke", "revoke": {"original_message_id": earlier}},
    "reaction": lambda earlier: {"type": "reaction",
                                 "reaction": {"message_id": earlier, "emoji": "\U0001f44d"}},
    "sticker": lambda _: {"type": "sticker", "sticker": {"mime_type": "image/webp", "sha256": "a6b7",
                                                         "id": "1480123456789017", "animated": False}},
    "group": lambda _: {"type": "text", "text": {"body": "5 kg chini"},
                        "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"},
    "errors": lambda _: {"type": "unsupported", "errors": [{
        "code": 131051, "title": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."}}]},
    "system": lambda _: {"type": "system", "system": {
        "body": "User changed from 9779860011223 to 9779860011224", "wa_id": "9779860011224",
        "type": "user_changed_number"}},
    "username": lambda _: {"from_user_id": USER_ID, "type": "text", "text": {"body": "3 kg chini"}},
}
# Each Twilio kind as the fields it adds to the form (given the message's SID).
TWILIO_KINDS = {
    "button": lambda _: {"MessageType": "button", "ButtonPayload": "confirm", "ButtonText": "Confirm",
                         "Body": "Confirm"},
    "list_reply": lambda _: {"MessageType": "interactive", "ListId": "DAL-MUGI", "ListTitle": "Moong Dal",
                             "Body": "Moong Dal"},
    "location": lambda _: {"MessageType": "location", "Latitude": "27.6939", "Longitude": "85.2946",
                           "Address": "Kalimati, Kathmandu 44600", "Label": "Hari Kirana Pasal", "Body": ""},
    "image": lambda sid: {"MessageType": "image", "NumMedia": "1", "MediaUrl0": MEDIA_URL.format(sid=sid),
                          "MediaContentType0": "image/jpeg", "Body": "yo list"},
    "voice_note": lambda sid: {"MessageType": "audio", "NumMedia": "1",
                               "MediaUrl0": MEDIA_URL.format(sid=sid), "MediaContentType0": "audio/ogg",
                               "Body": ""},
}
MESSAGE_KINDS = [("meta", name) for name in META_KINDS] + [("twilio", name) for name in TWILIO_KINDS]


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
                 twilio_number: str, seed: int | None = None, lookup: Lookup | None = None) -> None:
        self.lookup = lookup
        # Conversations under way: (provider, shop, id of the shop's last message).
        self.talking: list[tuple[str, tuple[str, str], str]] = []
        self.kind_index = 0
        self.last_order_id: str | None = None  # what edits, deletes, taps and reactions refer to
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
        if kind == "kind":
            delivery = self._message_kind()
            self.sent.append(delivery)
            return delivery
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
        step = self._next_step("whatsapp")
        if step is not None:
            return step
        shop, text = self.rng.choice(SHOPS), self.rng.choice(ORDERS)
        self.last_order_id = _wamid()
        self.talking.append(("whatsapp", shop, self.last_order_id))
        body = _meta_message(shop, text, self.last_order_id)
        return self._signed_meta("order", body, f"+{shop[0]}: {text!r}")

    def _next_step(self, provider: str) -> Delivery | None:
        """The shop's answer to what the instance last asked it, when it has asked something."""
        if self.lookup is None:
            return None
        for source, shop, message_id in list(self.talking):
            answer = self.lookup(source, message_id) if source == provider else None
            if answer is None:
                continue
            self.talking.remove((source, shop, message_id))
            kind, body, payload = answer
            if kind in ASKING:
                return self._answer(provider, shop, body, payload or {})
        return None

    def _answer(self, provider: str, shop: tuple[str, str], body: str, payload: dict) -> Delivery:
        """Tap a button or a list row (Meta), type an answer (Twilio), or follow up with more items."""
        roll = self.rng.random()
        if provider == "twilio":
            typed = "0" if "0. " in body else self.rng.choice(["1", "1", "1", "3", "2"])
            text = self.rng.choice(FOLLOW_UPS) if roll < 0.2 else typed
            return self._twilio_step(shop, text)
        message_id = _wamid()
        if "list" in payload:
            row_id, title, _ = self.rng.choice(payload["list"]["rows"])
            message = {"type": "interactive", "interactive": {
                "type": "list_reply", "list_reply": {"id": row_id, "title": title}}}
        elif "buttons" in payload and roll >= 0.2:
            button_id, title = self.rng.choices(payload["buttons"], weights=(6, 1, 1))[0]
            message = {"type": "interactive", "interactive": {
                "type": "button_reply", "button_reply": {"id": button_id, "title": title}}}
        else:
            message = {"type": "text", "text": {"body": self.rng.choice(FOLLOW_UPS)}}
        self.talking.append(("whatsapp", shop, message_id))
        value = {"contacts": [{"profile": {"name": shop[1]}, "wa_id": shop[0]}], "messages": [
            {"from": shop[0], "id": message_id, "timestamp": str(int(time.time())), **message}]}
        what = message.get("interactive", {}).get("type") or "follow-up"
        return self._signed_meta("conversation", _meta_body(value), f"+{shop[0]}: {what}")

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
        step = self._next_step("twilio")
        if step is not None:
            return step
        return self._twilio_step(self.rng.choice(SHOPS), self.rng.choice(ORDERS), kind="twilio")

    def _twilio_step(self, shop: tuple[str, str], text: str, kind: str = "conversation") -> Delivery:
        (phone, name), sid = shop, "SM" + uuid.uuid4().hex
        self.talking.append(("twilio", shop, sid))
        params = {
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32, "From": f"whatsapp:+{phone}", "To": self.twilio_number,
            "Body": text, "NumMedia": "0", "NumSegments": "1", "ProfileName": name, "WaId": phone,
            "SmsStatus": "received", "ApiVersion": "2010-04-01",
        }
        return self._twilio_form(kind, params, f"+{phone}: {text!r}")

    def _twilio_status(self) -> Delivery:
        phone = self.rng.choice(SHOPS)[0]
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered",
                  "AccountSid": "AC" + "0" * 32, "From": self.twilio_number, "To": f"whatsapp:+{phone}",
                  "ChannelPrefix": "whatsapp", "ErrorCode": ""}
        return self._twilio_form("twilio_status", params, f"delivered to +{phone}")

    def _message_kind(self) -> Delivery:
        """The next of MESSAGE_KINDS (Meta's only, without a Twilio token)."""
        usable = [k for k in MESSAGE_KINDS if self.twilio is not None or k[0] == "meta"]
        provider, name = usable[self.kind_index % len(usable)]
        self.kind_index += 1
        phone, shop_name = self.rng.choice(SHOPS)
        if provider == "twilio":
            sid = "SM" + uuid.uuid4().hex
            params = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": "AC" + "0" * 32,
                      "From": f"whatsapp:+{phone}", "To": self.twilio_number, "NumMedia": "0",
                      "ProfileName": shop_name, "WaId": phone, "ApiVersion": "2010-04-01",
                      **TWILIO_KINDS[name](sid)}
            return self._twilio_form(f"twilio_{name}", params, f"+{phone}: {name}")
        message = {"from": phone, "id": _wamid(), "timestamp": str(int(time.time())),
                   **META_KINDS[name](self.last_order_id or _wamid())}
        contact = {"profile": {"name": shop_name}, "wa_id": phone}
        if name == "username":
            message.pop("from")
            contact = {"profile": {"name": shop_name.lower().replace(" ", "_")}, "user_id": USER_ID}
        # System messages come without a contacts array.
        value = {"messages": [message]}
        if name != "system":
            value["contacts"] = [contact]
        return self._signed_meta(f"meta_{name}", _meta_body(value), f"+{phone}: {name}")
