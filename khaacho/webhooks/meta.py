"""Meta (WhatsApp Cloud API) webhooks: signature check and the walk of entry/changes into messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re

from khaacho.events import MAX_ID, Events, StatusUpdate, clean_json, clean_text, short_str
from khaacho.events import meta as inbound

SIGNATURE_PREFIX = "sha256="


class MalformedPayload(ValueError):
    """The body is not JSON we can read (invalid UTF-8, syntax, NaN, nesting too deep)."""


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
            messages = _dicts(value.get("messages"))
            contacts = _dicts(value.get("contacts")) if messages else []
            for item in messages:
                contact = _contact_of(item, contacts)
                if clean:
                    item, contact = clean_json(item), clean_json(contact)
                found = inbound.message(item, contact)
                if isinstance(found, str):
                    events.dropped.append(found)
                else:
                    events.messages.append(found)
            for status in _dicts(value.get("statuses")):
                update = parse_status(status)
                if update is not None:
                    events.statuses.append(update)
    return events


def _dicts(value: object) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _contact_of(message: dict, contacts: list[dict]) -> dict | None:
    """The ``contacts[]`` entry of the message's sender (by wa_id or user id), or the only one."""
    if len(contacts) == 1:
        return contacts[0]
    sender, user_id = message.get("from"), message.get("from_user_id")
    for contact in contacts:
        if (sender and contact.get("wa_id") == sender) or (user_id and contact.get("user_id") == user_id):
            return contact
    return None


def parse_status(status: dict) -> StatusUpdate | None:
    """One ``statuses[]`` item, or None without an id and status."""
    provider_id = short_str(status.get("id"), MAX_ID)
    state = short_str(status.get("status"), 16)
    if provider_id is None or state is None:
        return None
    errors = _dicts(status.get("errors"))
    error = clean_text(inbound.error_text(errors[0])) if errors else None
    return StatusUpdate(provider_id, state.lower(), error)
