"""Twilio WhatsApp webhooks: signature check with Twilio's validator and the form fields as events."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm

from khaacho.events import MAX_ID, Events, StatusUpdate
from khaacho.events import twilio as inbound

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
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


def parse(form: Mapping) -> Events:
    """A status callback (``MessageStatus``) or an inbound message; anything else yields nothing."""
    events = Events()
    sid = inbound.field(form, "MessageSid", MAX_ID) or inbound.field(form, "SmsMessageSid", MAX_ID)
    if sid is None:
        return events
    state = inbound.field(form, "MessageStatus", 16)
    if state is not None:
        error = inbound.field(form, "ErrorCode")
        if error and inbound.field(form, "ErrorMessage"):
            error = f"{error} {inbound.field(form, 'ErrorMessage')}"
        events.statuses.append(StatusUpdate(sid, state.lower(), error))
        return events
    found = inbound.message(form)
    if isinstance(found, str):
        events.dropped.append(found)
    else:
        events.messages.append(found)
    return events
