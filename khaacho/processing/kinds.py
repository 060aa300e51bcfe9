"""What the worker does with each kind of message: its final status, the note for ops, the reply.

The decision reads only the typed event (:mod:`khaacho.events`), never a rendered text, and is
the same however often a message is processed.
"""

from __future__ import annotations

from dataclasses import dataclass

from khaacho import events
from khaacho.events import InboundMessage
from khaacho.events import meta as meta_events
from khaacho.events import twilio as twilio_events
from khaacho.processing import conversation

# What the reply is built from (None: no reply at all).
ORDER, CART_ORDER, LOCATION_ACK, MEDIA_ACK = "order", "cart", "location", "media"
TAP, EDIT, DELETE = "tap", "edit", "delete"
# The conversation step for each reply that depends on the shop's orders.
CONVERSATION = {ORDER: conversation.on_text, CART_ORDER: conversation.on_cart, TAP: conversation.on_tap,
                EDIT: conversation.on_edit, DELETE: conversation.on_delete}
MEDIA_NAMES = {events.IMAGE: "photo", events.AUDIO: "audio", events.VOICE: "voice note",
               events.VIDEO: "video", events.DOCUMENT: "document"}


@dataclass(frozen=True)
class Decision:
    """The message's final status, a note for ops (``error_message``) and the reply to build, if any."""

    status: str
    note: str | None = None
    reply: str | None = None


def event_of(source: str, kind: str, text: str | None, payload: object, message_id: str,
             sender_id: str, phone: str | None) -> InboundMessage:
    """The typed event of a stored message, rebuilt from its payload (or its columns when it has none)."""
    if isinstance(payload, dict):
        found = twilio_events.message(payload) if source == "twilio" else meta_events.message(
            payload, payload.get(meta_events.CONTACT_KEY))
        if isinstance(found, InboundMessage):
            return found
    return InboundMessage(message_id, sender_id, phone, kind, text, {}, user_id=None if phone else sender_id)


def decide(event: InboundMessage) -> Decision:
    """The status, note and reply for the event's kind."""
    kind = event.message_type
    if event.group_id is not None:
        return Decision("ignored", f"group message (group {event.group_id}): not answered")
    if event.errors:
        return Decision("ignored", "provider error: " + "; ".join(event.errors))
    if kind == events.TEXT:
        return Decision("completed", reply=ORDER)
    if kind == events.CART:
        return Decision("completed", reply=CART_ORDER)
    if kind == events.LOCATION:
        return Decision("completed", reply=LOCATION_ACK)
    if kind in events.MEDIA_KINDS:
        return Decision("needs_attention", _media_note(event), reply=MEDIA_ACK)
    if kind in events.TAP_KINDS:
        return Decision("completed", reply=TAP)
    if kind == events.EDIT:
        return Decision("completed", reply=EDIT)
    if kind == events.DELETE:
        return Decision("completed", reply=DELETE)
    if kind == events.REACTION:
        what = f"reaction {event.text}" if event.text else "reaction removed"
        return Decision("ignored", f"{what} on {event.context_id}")
    if kind == events.STICKER:
        return Decision("ignored", "sticker")
    if kind == events.SYSTEM:
        return Decision("ignored", f"system message ({event.detail or 'unknown'})")
    return Decision("ignored", f"unsupported message ({event.detail or kind})")


def _media_note(event: InboundMessage) -> str:
    media = event.media
    name = MEDIA_NAMES.get(event.message_type, event.message_type)
    if media is None:
        return f"{name} without a media reference: for a person to look at"
    mime = f" ({media.mime_type})" if media.mime_type else ""
    caption = f", caption {media.caption!r}" if media.caption else ""
    return f"{name} {media.reference}{mime}{caption}: for a person to look at"
