"""Twilio WhatsApp webhooks: signature check with Twilio's validator and the form fields as events."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm

from khaacho.webhooks.meta import (
    MAX_ID,
    MAX_TYPE,
    Events,
    InboundMessage,
    StatusUpdate,
    clean_json,
    clean_text,
    location_text,
    normalise_phone,
)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
IGNORED_TYPES = frozenset({"reaction", "unsupported", "unknown"})
ALGORITHMS = frozenset({HMAC_SHA1, HMAC_SHA256})


def signature_problem(url: str, params: Mapping, signature: str | None, token: str | None,
                      settings_header: str | None = None) -> str | None:
    """Why ``signature`` does not sign ``url`` + ``params``, or None when it does.

    ``settings_header`` is X-Twilio-Webhooks-Signature-Settings: when it names HMAC_SHA256 the
    request was signed with that algorithm; without it Twilio's legacy HMAC-SHA1 is expected.
    The key is always ``token`` (TWILIO_AUTH_TOKEN): the contract has no separate shared-key secret.
    """
    if not token:
        return "no auth token configured"
    if not signature:
        return "missing signature"
    algorithm = get_signature_algorithm(settings_header) if settings_header else HMAC_SHA1
    if algorithm.upper() not in ALGORITHMS:
        # Refused here: Twilio's validator would log the sender's header whole, on every request.
        return "unsupported signature algorithm"
    if not RequestValidator(token).validate(url, params, signature, algorithm):
        return "invalid signature"
    return None


def _field(form: Mapping, name: str, limit: int | None = None) -> str | None:
    value = clean_text(form.get(name))
    if not value or (limit is not None and len(value) > limit):
        return None
    return value.strip() or None


def parse(form: Mapping) -> Events:
    """A status callback (``MessageStatus``) or an inbound message; anything else yields nothing."""
    events = Events()
    sid = _field(form, "MessageSid", MAX_ID) or _field(form, "SmsMessageSid", MAX_ID)
    if sid is None:
        return events
    state = _field(form, "MessageStatus", 16)
    if state is not None:
        error = _field(form, "ErrorCode")
        if error and _field(form, "ErrorMessage"):
            error = f"{error} {_field(form, 'ErrorMessage')}"
        events.statuses.append(StatusUpdate(sid, state.lower(), error))
        return events
    phone = normalise_phone(form.get("From"))
    if phone is None:
        return events
    message_type = _message_type(form)
    events.messages.append(InboundMessage(
        message_id=sid,
        sender_id=phone,
        phone_number=phone,
        message_type=message_type,
        text=_text(message_type, form),
        payload=clean_json({key: form.get(key) for key in form}),  # type: ignore[arg-type]
        ignored=message_type in IGNORED_TYPES,
    ))
    return events


def _message_type(form: Mapping) -> str:
    declared = _field(form, "MessageType", MAX_TYPE)
    if declared:
        return declared.lower()
    if _field(form, "Latitude") and _field(form, "Longitude"):
        return "location"
    if _field(form, "ButtonText"):
        return "button"
    media = _field(form, "MediaContentType0") or ""
    if media:
        return media.split("/", 1)[0][:MAX_TYPE]
    return "text"


def _text(message_type: str, form: Mapping) -> str | None:
    if message_type == "location":
        return location_text({
            "latitude": _field(form, "Latitude"), "longitude": _field(form, "Longitude"),
            "name": _field(form, "Label"), "address": _field(form, "Address"),
        })
    if message_type in {"button", "interactive"}:
        return _field(form, "ButtonText") or _field(form, "Body")
    return _field(form, "Body")
