"""Replies through Twilio's REST API (``POST {TWILIO_API_URL}/2010-04-01/Accounts/{sid}/Messages.json``)."""

from __future__ import annotations

import json

from flask import current_app

from khaacho.replies.transport import PermanentSendError, RetryableSendError, error_json, post

RETRYABLE_CODES = frozenset({20429, 20500, 20503})
PERMANENT_REASONS = {
    63016: "outside the 24-hour window: only a template may be sent",
    21211: "invalid 'To' number",
    21610: "the recipient has opted out",
    20003: "authentication failed",
}


def send_text(recipient: str, body: str, payload: dict | None = None) -> str:
    """Send a WhatsApp text (or, for a template ``payload``, the order-update content) to an E.164 number.

    Returns Twilio's message SID. Buttons and lists are already written into the text as typed answers.
    """
    config = current_app.config
    sid, token, sender = (config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                          config["TWILIO_WHATSAPP_NUMBER"])
    if not sid or not token or not sender:
        raise PermanentSendError(
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_NUMBER must be set to reply"
        )
    to = recipient if recipient.startswith("whatsapp:") else f"whatsapp:{recipient}"
    data = {"From": sender, "To": to, "Body": body}
    if payload and "template" in payload:
        content_sid = config["TWILIO_CONTENT_SID_ORDER_UPDATE"]
        if not content_sid:
            raise PermanentSendError("TWILIO_CONTENT_SID_ORDER_UPDATE is not set: a template is needed")
        variables = {str(n): str(value) for n, value in enumerate(payload["template"]["params"], start=1)}
        data = {"From": sender, "To": to, "ContentSid": content_sid,
                "ContentVariables": json.dumps(variables)}
    response = post(f"{config['TWILIO_API_URL']}/2010-04-01/Accounts/{sid}/Messages.json",
                    form=data, auth=(sid, token))
    if response.ok:
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError, TypeError):
            # Twilio took the request; sending again could deliver the reply twice.
            raise PermanentSendError(
                f"Twilio answered {response.status_code} without a message SID"
            ) from None
    raise classify(response.status_code, error_json(response))


def classify(status: int, error: dict) -> RetryableSendError | PermanentSendError:
    """The exception for a Twilio error answer (HTTP status and its JSON body)."""
    code = error.get("code")
    reason = PERMANENT_REASONS.get(code) or error.get("message") or f"HTTP {status}"
    text = f"Twilio error {code if code is not None else '-'} (HTTP {status}): {reason}"
    if code in RETRYABLE_CODES or status >= 500 or status == 429:
        return RetryableSendError(text, code)
    return PermanentSendError(text, code)
