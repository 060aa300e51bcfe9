"""Replies through the WhatsApp Cloud API (``POST {WHATSAPP_API_URL}/{phone number id}/messages``)."""

from __future__ import annotations

from flask import current_app

from khaacho.replies.transport import PermanentSendError, RetryableSendError, error_json, post

# Meta error codes worth asking again for: throttling, pair rate limits and Meta-side hiccups.
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004})
# Named for the log; every other code on a 4xx answer is permanent as well.
PERMANENT_REASONS = {
    131047: "more than 24 hours since the customer's last message",
    131026: "message undeliverable to this recipient",
    131062: "business-scoped user ids are not accepted for this message",
    190: "access token expired or invalid",
}


def is_user_id(recipient: str) -> bool:
    """True for a business-scoped user id (``NP.1349…``), false for a phone number."""
    return not recipient.lstrip("+").isdigit()


def content(body: str, payload: dict | None) -> dict:
    """The type-specific part of a message: text, reply buttons, a list, or the order-update template.

    ``payload`` is what :mod:`khaacho.replies.interactive` stores on the reply.
    """
    payload = payload or {}
    if "buttons" in payload:
        buttons = [{"type": "reply", "reply": {"id": button_id, "title": title}}
                   for button_id, title in payload["buttons"]]
        return {"type": "interactive", "interactive": {"type": "button", "body": {"text": body},
                                                       "action": {"buttons": buttons}}}
    if "list" in payload:
        listing = payload["list"]
        rows = [{"id": row_id, "title": title, **({"description": about} if about else {})}
                for row_id, title, about in listing["rows"]]
        return {"type": "interactive", "interactive": {
            "type": "list", "body": {"text": body},
            "action": {"button": listing["button"],
                       "sections": [{"title": listing["section"], "rows": rows}]}}}
    if "template" in payload:
        config = current_app.config
        name = config["WHATSAPP_TEMPLATE_ORDER_UPDATE"]
        if not name:
            raise PermanentSendError("WHATSAPP_TEMPLATE_ORDER_UPDATE is not set: the notice needs a template")
        parameters = [{"type": "text", "text": str(value)} for value in payload["template"]["params"]]
        return {"type": "template", "template": {
            "name": name, "language": {"code": config["WHATSAPP_TEMPLATE_LANGUAGE"]},
            "components": [{"type": "body", "parameters": parameters}]}}
    return {"type": "text", "text": {"preview_url": False, "body": body}}


def send_text(recipient: str, body: str, reply_to: str | None = None,
              callback_data: str | None = None, payload: dict | None = None) -> str:
    """Send a message (text, or the interactive or template ``payload``); returns Meta's id (``wamid.…``)."""
    config = current_app.config
    token, phone_id = config["WHATSAPP_ACCESS_TOKEN"], config["WHATSAPP_PHONE_NUMBER_ID"]
    if not token or not phone_id:
        raise PermanentSendError("WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID must be set to reply")
    message: dict = {"messaging_product": "whatsapp", "recipient_type": "individual",
                     **content(body, payload)}
    # A user who hides their number behind a username is addressed by the business-scoped
    # user id in ``recipient``; ``to`` takes a phone number (digits, no plus).
    if is_user_id(recipient):
        message["recipient"] = recipient
    else:
        message["to"] = recipient.lstrip("+")
    if reply_to:
        message["context"] = {"message_id": reply_to}
    if callback_data:
        message["biz_opaque_callback_data"] = callback_data
    response = post(f"{config['WHATSAPP_API_URL']}/{phone_id}/messages", json_body=message,
                    headers={"Authorization": f"Bearer {token}"})
    if response.ok:
        try:
            return str(response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            # Meta took the request; sending again could deliver the reply twice.
            raise PermanentSendError(f"Meta answered {response.status_code} without a message id") from None
    raise classify(response.status_code, error_json(response).get("error") or {})


def classify(status: int, error: dict) -> RetryableSendError | PermanentSendError:
    """The exception for a Meta error answer (HTTP status and its ``error`` object)."""
    code = error.get("code")
    detail = (error.get("error_data") or {}).get("details") or error.get("message") or ""
    reason = PERMANENT_REASONS.get(code, detail) or f"HTTP {status}"
    text = f"Meta error {code if code is not None else '-'} (HTTP {status}): {reason}"
    if code in RETRYABLE_CODES or status >= 500 or status == 429:
        return RetryableSendError(text, code)
    return PermanentSendError(text, code)
