"""Meta (WhatsApp Cloud API): one ``value.messages[]`` item and its sender's contact as an event."""

from __future__ import annotations

from khaacho.events import (
    AUDIO,
    BUTTON,
    CART,
    DELETE,
    EDIT,
    LIST,
    LOCATION,
    MAX_ID,
    MAX_SENDER,
    NO_TIMESTAMP,
    QUICK_REPLY,
    REACTION,
    STICKER,
    SYSTEM,
    TEXT,
    UNSUPPORTED,
    VOICE,
    CartItem,
    InboundMessage,
    Location,
    Media,
    normalise_phone,
    number,
    short_str,
)

# The sender's ``value.contacts[]`` entry (profile name, wa_id, user_id) is stored inside the
# message's payload under this key: Meta sends it beside the message, and the worker needs it.
CONTACT_KEY = "contact"
MEDIA_TYPES = frozenset({"image", "video", "document", "audio", "sticker"})
MAX_TEXT_ID = 256  # reply button and list row ids are at most 256 characters
MAX_QUANTITY = 100_000  # a cart line beyond this is not a shop's order (and would not fit orders.total)
MAX_PRICE = 100_000_000


def _get(obj: object, *path: str) -> object:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _id(value: object, limit: int) -> str | None:
    # The strings here are cleaned already: only type and length are checked.
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def message(message: dict, contact: dict | None) -> InboundMessage | str:
    """The event of one message (strings already cleaned), or why it cannot be kept."""
    message_id = short_str(message.get("id"), MAX_ID)
    if message_id is None:
        return "a message without a usable id"
    contact = contact if isinstance(contact, dict) else {}
    raw_from = message.get("from")
    phone = normalise_phone(raw_from)
    user_id = _id(message.get("from_user_id"), MAX_SENDER) or _id(contact.get("user_id"), MAX_SENDER)
    sender = phone or user_id
    if sender is None:
        shown = str(raw_from)[:40] if raw_from not in (None, "") else "none"
        return f"message {message_id[:80]}: sender {shown!r} is not an E.164 number or user id"
    kind = _str(message.get("type")) or UNSUPPORTED
    body = message.get(kind)
    body = body if isinstance(body, dict) else {}
    fields: dict = {}
    text = None
    if kind == TEXT:
        text = _str(body.get("body"))
    elif kind == "interactive":
        kind, text = _interactive(body, fields)
    elif kind == "button":
        kind, text = QUICK_REPLY, _str(body.get("text"))
        fields["tapped_id"] = short_str(body.get("payload"), MAX_TEXT_ID)
    elif kind == "order":
        kind, text = CART, _cart(body, fields)
    elif kind == LOCATION:
        kind, text = _location(body, fields)
    elif kind in MEDIA_TYPES:
        kind, text = _media(kind, body, fields)
    elif kind == EDIT:
        fields["context_id"] = short_str(body.get("original_message_id"), MAX_ID)
        edited = body.get("message")
        text = _str(_get(edited, "text", "body")) or _str(_get(edited, _get(edited, "type") or "", "caption"))
    elif kind == "revoke":
        kind = DELETE
        fields["context_id"] = short_str(body.get("original_message_id"), MAX_ID)
    elif kind == REACTION:
        fields["context_id"] = short_str(body.get("message_id"), MAX_ID)
        text = _str(body.get("emoji"))
    elif kind == SYSTEM:
        text = _str(body.get("body"))
        fields["detail"] = short_str(body.get("type"), 64)
        if fields["detail"] == "user_changed_number":
            fields["new_phone"] = normalise_phone(body.get("wa_id"))
    else:
        fields["detail"] = short_str(kind, 64)
        kind = UNSUPPORTED
    if "context_id" not in fields:
        context = message.get("context")
        fields["context_id"] = _id(context.get("id"), MAX_ID) if isinstance(context, dict) else None
    errors = message.get("errors")
    if errors:
        listed = errors if isinstance(errors, list) else [{"title": "malformed errors"}]
        fields["errors"] = tuple(error_text(e) if isinstance(e, dict) else "malformed error" for e in listed)
    group_id = message.get("group_id")
    if group_id:
        fields["group_id"] = short_str(group_id, MAX_ID) or "?"
    return InboundMessage(
        message_id=message_id, sender_id=sender, phone_number=phone, message_type=kind, text=text,
        payload={**message, CONTACT_KEY: contact} if contact and CONTACT_KEY not in message else message,
        timestamp=_timestamp(message.get("timestamp")), user_id=user_id,
        profile_name=_id(_get(contact, "profile", "name"), 255),
        **fields,
    )


def _timestamp(value: object) -> int:
    """Meta's seconds since the epoch, or :data:`NO_TIMESTAMP` when missing or unreadable."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return value
    return NO_TIMESTAMP


def _interactive(body: dict, fields: dict) -> tuple[str, str | None]:
    reply_type = body.get("type")
    if reply_type in ("button_reply", "list_reply"):
        reply = body.get(reply_type)
        fields["tapped_id"] = short_str(_get(reply, "id"), MAX_TEXT_ID)
        return (BUTTON if reply_type == "button_reply" else LIST), _str(_get(reply, "title"))
    # Flow completions (nfm_reply), call-permission answers and whatever comes next.
    fields["detail"] = f"interactive {short_str(reply_type, 48) or '?'}"
    return UNSUPPORTED, None


def _cart(body: dict, fields: dict) -> str | None:
    items = []
    for raw in body.get("product_items") or ():
        if not isinstance(raw, dict):
            continue
        sku, quantity = short_str(raw.get("product_retailer_id"), 64), number(raw.get("quantity"))
        if sku is None or quantity is None or not 0 < quantity <= MAX_QUANTITY:
            continue
        price = number(raw.get("item_price"))
        if price is not None and not 0 <= price < MAX_PRICE:
            price = None  # not a price a shop saw
        items.append(CartItem(sku, quantity, price, _str(raw.get("currency"))))
    fields["cart"] = tuple(items)
    note = _str(body.get("text"))
    listed = ", ".join(f"{item.sku} × {item.quantity}" for item in items) or "empty"
    return f"Cart: {listed}" + (f" ({note})" if note else "")


def _location(body: dict, fields: dict) -> tuple[str, str | None]:
    lat, lon = number(body.get("latitude")), number(body.get("longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        fields["detail"] = "location without valid coordinates"
        return UNSUPPORTED, None
    location = Location(float(lat), float(lon), _str(body.get("name")), _str(body.get("address")))
    fields["location"] = location
    return LOCATION, location_text(location)


def location_text(location: Location) -> str:
    """``Location: name, address (lat, long)``: how a pin reads on the dashboard."""
    coords = f"({location.latitude}, {location.longitude})"
    return f"Location: {location.label} {coords}" if location.label else f"Location: {coords}"


def _media(kind: str, body: dict, fields: dict) -> tuple[str, str | None]:
    reference = short_str(body.get("id"), MAX_ID) or short_str(body.get("url"), 1024) or "?"
    caption = _str(body.get("caption"))
    fields["media"] = Media(reference, short_str(body.get("mime_type"), 128), caption)
    if kind == "sticker":
        return STICKER, None
    if kind == "audio":
        return (VOICE if body.get("voice") is True else AUDIO), None
    return kind, caption


def error_text(error: dict) -> str:
    """``code title: details`` of one provider error object."""
    details = _get(error, "error_data", "details")
    head = " ".join(str(p) for p in (error.get("code"), error.get("title") or error.get("message")) if p)
    return f"{head}: {details}" if details and details != head else head or "unknown error"
