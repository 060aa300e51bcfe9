"""Meta (WhatsApp Cloud API) webhooks: signature check and the walk of entry/changes into messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field

SIGNATURE_PREFIX = "sha256="
# Messages with nothing for the order engine to read; stored as ``ignored``.
IGNORED_TYPES = frozenset({"reaction", "unsupported", "system", "unknown", "ephemeral"})
# Column widths of webhook_messages: anything longer is not a provider value.
MAX_ID = 255
MAX_SENDER = 128
MAX_TYPE = 32
_PHONE_JUNK = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"^[1-9][0-9]{7,14}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A message without a readable timestamp gets the epoch: older than any replay window, so intake
# records it ``stale`` (replayable by ops) instead of skipping the check. Twilio signs no
# timestamp at all; its messages keep None.
NO_TIMESTAMP = 0


class MalformedPayload(ValueError):
    """The body is not JSON we can read (invalid UTF-8, syntax, NaN, nesting too deep)."""


@dataclass(slots=True)
class InboundMessage:
    """One message a user sent, as much as intake needs of it."""

    message_id: str
    sender_id: str
    phone_number: str | None
    message_type: str
    text: str | None
    payload: dict
    timestamp: int | None = None
    ignored: bool = False


@dataclass(slots=True)
class StatusUpdate:
    """A delivery status of a message we sent."""

    provider_message_id: str
    status: str
    error: str | None = None


@dataclass(slots=True)
class Events:
    """Everything one webhook request carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)


def signature_problem(body: bytes, header: str | None, secrets: list[str]) -> str | None:
    """Why ``header`` is not a valid X-Hub-Signature-256 of the raw ``body``, or None when it is."""
    if not secrets:
        return "no app secret configured"
    if not header:
        return "missing signature"
    if not header.startswith(SIGNATURE_PREFIX):
        return "malformed signature"
    given = header[len(SIGNATURE_PREFIX):].strip().lower().encode("ascii", "replace")
    valid = False
    # Every secret is tried (no early exit) so timing does not reveal which one matched.
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        valid |= hmac.compare_digest(expected, given)
    return None if valid else "invalid signature"


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


# Strict JSON carries a NUL or a lone surrogate only as a ``\\u`` escape (raw control characters
# and invalid UTF-8 are refused), so a body without such an escape has nothing to clean.
_UNSAFE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _reject_constant(name: str) -> float:
    raise MalformedPayload(f"{name} is not JSON")


def _finite_float(literal: str) -> float | str:
    """A number literal as a float, or kept as its text when no float holds it (``1e400``).

    JSON cannot store infinity: PostgreSQL refuses the whole row, so one such field would make
    the provider's batch fail on every retry. As text it is stored, and still says what was sent.
    """
    value = float(literal)
    return value if math.isfinite(value) else literal


# One for all: json.loads builds one a call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads(body: bytes) -> object:
    """Strict JSON from bytes; any failure is a :class:`MalformedPayload`."""
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedPayload(str(exc)[:200]) from None


def parse(body: bytes) -> Events:
    """Walk every entry/change of a Meta webhook; shapes we do not know yield no events."""
    data = loads(body)
    events = Events()
    if not isinstance(data, dict):
        return events
    clean = _UNSAFE_ESCAPE.search(body) is not None
    for entry in _dicts(data.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field", "messages") != "messages" or not isinstance(value, dict):
                continue
            for message in _dicts(value.get("messages")):
                inbound = parse_message(message, clean)
                if inbound is not None:
                    events.messages.append(inbound)
            for status in _dicts(value.get("statuses")):
                update = parse_status(status)
                if update is not None:
                    events.statuses.append(update)
    return events


def _dicts(value: object) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _short_str(value: object, limit: int) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return clean_text(value)


def _timestamp(value: object) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return value
    return NO_TIMESTAMP


def parse_message(message: dict, clean: bool = True) -> InboundMessage | None:
    """One ``messages[]`` item, or None when it has no usable id or sender.

    ``clean=False`` keeps the payload as parsed, for a body known to hold no NUL or lone surrogate.
    """
    message_id = _short_str(message.get("id"), MAX_ID)
    phone = normalise_phone(message.get("from"))
    sender = phone or _short_str(message.get("from_user_id"), MAX_SENDER)
    if message_id is None or sender is None:
        return None
    message_type = _short_str(message.get("type"), MAX_TYPE) or "unknown"
    if message.get("errors") and message_type not in IGNORED_TYPES:
        message_type = "unsupported"
    return InboundMessage(
        message_id=message_id,
        sender_id=sender,
        phone_number=phone,
        message_type=message_type,
        text=message_text(message_type, message),
        payload=clean_json(message) if clean else message,  # type: ignore[arg-type]
        timestamp=_timestamp(message.get("timestamp")),
        ignored=message_type in IGNORED_TYPES,
    )


def _get(obj: object, *path: str) -> object:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def message_text(message_type: str, message: dict) -> str | None:
    """What the user wrote or chose: text body, reply title, caption, or a location as text."""
    if message_type == "text":
        found = _get(message, "text", "body")
    elif message_type == "interactive":
        found = (_get(message, "interactive", "button_reply", "title")
                 or _get(message, "interactive", "list_reply", "title"))
    elif message_type == "button":
        found = _get(message, "button", "text")
    elif message_type in {"image", "video", "document"}:
        found = _get(message, message_type, "caption")
    elif message_type == "location":
        return location_text(message.get("location"))
    else:
        return None
    return clean_text(found)


def location_text(location: object) -> str | None:
    """``Location: name, address (lat, long)`` from a location object."""
    if not isinstance(location, dict):
        return None
    lat, lon = location.get("latitude"), location.get("longitude")
    parts = [clean_text(location.get(k)) for k in ("name", "address")]
    label = ", ".join(p for p in parts if p)
    if isinstance(lat, int | float | str) and isinstance(lon, int | float | str):
        coords = clean_text(f"({lat}, {lon})")
        label = f"{label} {coords}" if label else coords
    return f"Location: {label}" if label else None


def parse_status(status: dict) -> StatusUpdate | None:
    """One ``statuses[]`` item, or None without an id and status."""
    provider_id = _short_str(status.get("id"), MAX_ID)
    state = _short_str(status.get("status"), 16)
    if provider_id is None or state is None:
        return None
    error = None
    errors = _dicts(status.get("errors"))
    if errors:
        first = errors[0]
        details = _get(first, "error_data", "details")
        error = " ".join(str(p) for p in (first.get("code"), first.get("title"), details) if p)
    return StatusUpdate(provider_id, state.lower(), clean_text(error))
