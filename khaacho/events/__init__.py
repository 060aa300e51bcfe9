"""The typed inbound event: one per WhatsApp message, whichever provider delivered it.

The webhooks build it from the request (:mod:`khaacho.events.meta`, :mod:`khaacho.events.twilio`);
the worker rebuilds it from the stored row (:func:`from_row`) and acts on its kind, never on a
rendered text. This package sits below both, so processing never imports the webhooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

# The kinds of message (``webhook_messages.message_type``).
TEXT = "text"
BUTTON = "button"            # a tap on a reply button (Meta interactive button_reply, Twilio button)
LIST = "list"                # a tap on a list row
QUICK_REPLY = "quick_reply"  # a tap on a template's quick-reply button (Meta type button)
CART = "cart"                # a catalog cart (Meta type order)
LOCATION = "location"
IMAGE, AUDIO, VOICE, VIDEO, DOCUMENT = "image", "audio", "voice", "video", "document"
STICKER = "sticker"
EDIT = "edit"
DELETE = "delete"            # Meta revoke
REACTION = "reaction"
SYSTEM = "system"
UNSUPPORTED = "unsupported"

TAP_KINDS = frozenset({BUTTON, LIST, QUICK_REPLY})
MEDIA_KINDS = frozenset({IMAGE, AUDIO, VOICE, VIDEO, DOCUMENT})
KINDS = (TEXT, BUTTON, LIST, QUICK_REPLY, CART, LOCATION, IMAGE, AUDIO, VOICE, VIDEO, DOCUMENT, STICKER,
         EDIT, DELETE, REACTION, SYSTEM, UNSUPPORTED)

# Column widths of webhook_messages: anything longer is not a provider value.
MAX_ID = 255
MAX_SENDER = 128
_PHONE_JUNK = re.compile(r"[\s\-().]")
# E.164: a country code and subscriber number of at most 15 digits; the shortest in use have 7 (+683 4001).
_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Location:
    """A shared location pin."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    @property
    def label(self) -> str | None:
        """Name and address as one line, or None when the pin has neither."""
        return ", ".join(p for p in (self.name, self.address) if p) or None


@dataclass(frozen=True, slots=True)
class Media:
    """A photo, voice note, audio, video or document: the provider's reference, not the bytes."""

    reference: str  # Meta media id or Twilio MediaUrl0
    mime_type: str | None = None
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class CartItem:
    """One line of a catalog cart: our SKU, the quantity, and the price the shop saw."""

    sku: str
    quantity: Decimal
    item_price: Decimal | None = None
    currency: str | None = None


# A message without a readable timestamp gets the epoch: older than any replay window, so intake
# records it ``stale`` (replayable by ops) instead of skipping the check. Twilio signs no
# timestamp at all; its messages keep None.
NO_TIMESTAMP = 0


class InboundMessage(NamedTuple):
    """One message a user sent, typed by its kind (``message_type``, one of :data:`KINDS`).

    Immutable like the frozen dataclasses above, but a NamedTuple: it is built for every message
    on the webhook hot path, and a frozen dataclass of this many fields costs five times as much.
    """

    message_id: str
    sender_id: str  # E.164 phone, or the business-scoped user id when no phone came
    phone_number: str | None
    message_type: str
    text: str | None  # what the user wrote or chose, for people to read; never parsed for taps
    payload: dict
    timestamp: int | None = None
    user_id: str | None = None  # Meta business-scoped user id
    profile_name: str | None = None
    tapped_id: str | None = None  # the id of the button, list row or template payload
    context_id: str | None = None  # the message this one replies to, edits, deletes or reacts to
    media: Media | None = None
    location: Location | None = None
    cart: tuple[CartItem, ...] = ()
    errors: tuple[str, ...] = ()  # provider errors, code first
    group_id: str | None = None
    new_phone: str | None = None  # a user_changed_number system message: the number moved to
    detail: str | None = None  # what an unsupported or system message was (its type)


@dataclass(slots=True)
class StatusUpdate:
    """A delivery status of a message we sent."""

    provider_message_id: str
    status: str
    error: str | None = None


@dataclass(slots=True)
class Events:
    """Everything one webhook request carried; ``dropped`` says why any message was not kept."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def audit_reason(self) -> str | None:
        """The audit row's reason: what of the request was not stored, or None when all of it was."""
        if self.dropped:
            return ("not stored: " + "; ".join(self.dropped))[:255]
        if not (self.messages or self.statuses):
            return "no messages or statuses"
        return None


def normalise_phone(raw: object) -> str | None:
    """E.164 (``+9779812345678``) from Meta's digits, ``whatsapp:+…`` or ``00…``; None if not a number."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    value = _PHONE_JUNK.sub("", str(raw).strip())
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:"):]
    if value.startswith("+"):
        value = value[1:]
    elif value.startswith("00"):
        value = value[2:]
    return "+" + value if _DIGITS.match(value) else None


def clean_text(value: object) -> str | None:
    """A string safe for any database column: no NUL, no lone surrogates; None for non-strings."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def clean_json(value: object) -> object:
    """``value`` with every string (keys too) made safe by :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def short_str(value: object, limit: int) -> str | None:
    """A non-empty string (or integer) of at most ``limit`` characters, cleaned; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return clean_text(value)


def number(value: object) -> Decimal | None:
    """A finite decimal from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        found = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return found if found.is_finite() else None

