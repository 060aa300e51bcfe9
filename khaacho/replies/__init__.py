"""Sending replies through the provider a message came from, with failures classified.

A ``RetryableSendError`` means the provider did not take the message and may take it later
(timeouts, 5xx, throttling); a ``PermanentSendError`` means sending again cannot help
(outside the 24-hour window, blocked or unknown recipient, bad credentials).
"""

from __future__ import annotations

from khaacho.replies import meta, twilio
from khaacho.replies.transport import PermanentSendError, RetryableSendError, SendError

__all__ = ["MAX_LENGTH", "PermanentSendError", "RetryableSendError", "SendError", "send_reply"]

# Longest text body each provider takes (Cloud API text messages; Twilio's WhatsApp body).
MAX_LENGTH = {"whatsapp": 4096, "twilio": 1600}


def send_reply(provider: str, recipient: str, body: str, reply_to: str | None = None,
               callback_data: str | None = None, payload: dict | None = None) -> str:
    """Send ``body`` (with its buttons, list or template ``payload``) to ``recipient``; the provider's id."""
    if provider == "whatsapp":
        return meta.send_text(recipient, body, reply_to=reply_to, callback_data=callback_data,
                              payload=payload)
    if provider == "twilio":
        return twilio.send_text(recipient, body, payload=payload)
    raise PermanentSendError(f"no sender for provider {provider!r}")
