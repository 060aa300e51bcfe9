"""Twilio WhatsApp: the form fields of one inbound message as an event."""

from __future__ import annotations

from collections.abc import Mapping

from khaacho.events import (
    AUDIO,
    BUTTON,
    DOCUMENT,
    IMAGE,
    LIST,
    LOCATION,
    MAX_ID,
    REACTION,
    STICKER,
    TEXT,
    UNSUPPORTED,
    VIDEO,
    InboundMessage,
    Location,
    Media,
    clean_text,
    normalise_phone,
    number,
)
from khaacho.events.meta import MAX_TEXT_ID, location_text

MEDIA_PREFIXES = {"image": IMAGE, "audio": AUDIO, "video": VIDEO}
# MessageType values that are a kind of their own; media types are read from the content type.
DECLARED = {"text": TEXT, "location": LOCATION, "button": BUTTON, "interactive": LIST, "sticker": STICKER,
            "reaction": REACTION, "image": IMAGE, "audio": AUDIO, "video": VIDEO, "document": DOCUMENT}


def field(form: Mapping, name: str, limit: int | None = None) -> str | None:
    """A form field, cleaned and stripped; None when absent, empty or longer than ``limit``."""
    value = clean_text(form.get(name))
    if not value or (limit is not None and len(value) > limit):
        return None
    return value.strip() or None


def message(form: Mapping) -> InboundMessage | str:
    """The event of an inbound message form, or why it cannot be kept."""
    sid = field(form, "MessageSid", MAX_ID) or field(form, "SmsMessageSid", MAX_ID)
    if sid is None:
        return "a message without a MessageSid"
    phone = normalise_phone(form.get("From"))
    if phone is None:
        return f"message {sid}: sender {str(form.get('From'))[:40]!r} is not an E.164 number"
    fields: dict = {"context_id": field(form, "OriginalRepliedMessageSid", MAX_ID)}
    kind, text = _kind(form, fields), field(form, "Body")
    if kind == LOCATION:
        text = _location(form, fields)
        if text is None:
            kind, fields["detail"] = UNSUPPORTED, "location without valid coordinates"
    elif kind in (BUTTON, LIST):
        id_field, title_field = ("ButtonPayload", "ButtonText") if kind == BUTTON else ("ListId", "ListTitle")
        fields["tapped_id"] = field(form, id_field, MAX_TEXT_ID)
        text = field(form, title_field) or text
    elif kind in (IMAGE, AUDIO, VIDEO, DOCUMENT, STICKER):
        reference = field(form, "MediaUrl0", 1024) or "?"
        fields["media"] = Media(reference, field(form, "MediaContentType0", 128), text)
    return InboundMessage(
        message_id=sid, sender_id=phone, phone_number=phone, message_type=kind, text=text,
        payload={key: clean_text(form.get(key)) for key in form},
        profile_name=field(form, "ProfileName", 255), **fields,
    )


def _kind(form: Mapping, fields: dict) -> str:
    declared = (field(form, "MessageType", 32) or "").lower()
    media = _media_count(form) > 0
    if declared:
        kind = DECLARED.get(declared)
        if kind == LIST and field(form, "ListId") is None and field(form, "ButtonPayload"):
            return BUTTON
        if kind is not None and not (media and kind == TEXT):
            return _media_kind(form, kind) if kind in (IMAGE, AUDIO, VIDEO, DOCUMENT) else kind
        if kind is None and not media:
            fields["detail"] = declared
            return UNSUPPORTED
    if media:
        return _media_kind(form, DOCUMENT)
    if field(form, "Latitude") and field(form, "Longitude"):
        return LOCATION
    if field(form, "ButtonPayload") or field(form, "ButtonText"):
        return BUTTON
    if field(form, "ListId"):
        return LIST
    return TEXT


def _media_count(form: Mapping) -> int:
    try:
        return int(field(form, "NumMedia", 4) or 0)
    except ValueError:
        return 0


def _media_kind(form: Mapping, default: str) -> str:
    content_type = (field(form, "MediaContentType0", 128) or "").lower()
    return MEDIA_PREFIXES.get(content_type.split("/", 1)[0], default if not content_type else DOCUMENT)


def _location(form: Mapping, fields: dict) -> str | None:
    lat, lon = number(field(form, "Latitude", 32)), number(field(form, "Longitude", 32))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    location = Location(float(lat), float(lon), field(form, "Label"), field(form, "Address"))
    fields["location"] = location
    return location_text(location)
