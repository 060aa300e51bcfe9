"""The typed inbound event read from provider shapes: the odd corners the kind fixtures do not cover."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from khaacho.events import meta as meta_events
from khaacho.events import twilio as twilio_events
from khaacho.webhooks import meta, twilio
from tests.kinds_support import META_KINDS, meta_kind, twilio_kind


def _meta_message(name: str, **fields) -> dict:
    return dict(META_KINDS[name]["messages"][0], **fields)


def test_each_sender_of_a_batch_gets_its_own_contact():
    payload = meta_kind("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"].append({"profile": {"name": "Sita General Store"}, "wa_id": "9779857654321"})
    value["messages"].append(dict(value["messages"][0], id="wamid.SITA", **{"from": "9779857654321"}))
    del value["messages"][1]["from_user_id"]
    events = meta.parse(json.dumps(payload).encode())
    assert [(m.phone_number, m.profile_name, m.user_id) for m in events.messages] == [
        ("+9779841234567", "Hari Kirana Pasal", "NP.13491208655302741918"),
        ("+9779857654321", "Sita General Store", None)]
    assert events.messages[1].payload["contact"]["wa_id"] == "9779857654321"


@pytest.mark.parametrize("location", [
    {"latitude": 91, "longitude": 85.29}, {"latitude": "north", "longitude": 85.29}, {"name": "no pin"},
])
def test_a_location_without_valid_coordinates_is_unsupported_not_text(location):
    event = meta_events.message(_meta_message("location", location=location), None)
    assert (event.message_type, event.location, event.detail) == (
        "unsupported", None, "location without valid coordinates")


def test_cart_lines_without_a_sku_or_a_sensible_quantity_are_left_out_and_absurd_prices_unread():
    items = [{"product_retailer_id": "SUGAR", "quantity": "2.5", "item_price": 110},
             {"product_retailer_id": "SALT", "quantity": 1, "item_price": 1e300},
             {"quantity": 3}, {"product_retailer_id": "RICE", "quantity": 0},
             {"product_retailer_id": "RICE", "quantity": 1e12},
             {"product_retailer_id": "SALT", "quantity": True}, "not a line"]
    event = meta_events.message(_meta_message("catalog_cart", order={"product_items": items}), None)
    assert [(i.sku, i.quantity, i.item_price) for i in event.cart] == [
        ("SUGAR", Decimal("2.5"), Decimal("110")), ("SALT", Decimal("1"), None)]
    assert event.text == "Cart: SUGAR × 2.5, SALT × 1"


def test_a_removed_reaction_and_an_edited_caption_are_read():
    removed = meta_events.message(_meta_message("reaction", reaction={"message_id": "wamid.X"}), None)
    assert (removed.message_type, removed.text, removed.context_id) == ("reaction", None, "wamid.X")
    edit = {"original_message_id": "wamid.P", "message": {"type": "image", "image": {"caption": "naya list"}}}
    edited = meta_events.message(_meta_message("edit", edit=edit), None)
    assert (edited.text, edited.context_id) == ("naya list", "wamid.P")


@pytest.mark.parametrize("fields, kind", [
    ({"Latitude": "27.7", "Longitude": "85.3"}, "location"),
    ({"ButtonPayload": "confirm", "ButtonText": "Confirm"}, "button"),
    ({"ListId": "row-1", "ListTitle": "Dal"}, "list"),
    ({"NumMedia": "1", "MediaContentType0": "audio/ogg", "MediaUrl0": "https://x/y"}, "audio"),
    ({"NumMedia": "1", "MediaContentType0": "application/pdf", "MediaUrl0": "https://x/y"}, "document"),
    ({"Body": "5 kg chini"}, "text"),
])
def test_twilio_forms_without_a_message_type_are_read_from_their_fields(fields, kind):
    form = {**twilio_kind("text", Body=""), **fields}
    form.pop("MessageType")
    assert twilio_events.message(form).message_type == kind


def test_a_twilio_interactive_button_tap_is_a_button_not_a_list():
    event = twilio_events.message(twilio_kind("list_reply", ListId="", ButtonPayload="cancel"))
    assert (event.message_type, event.tapped_id) == ("button", "cancel")


def test_a_request_that_drops_a_message_says_why_in_its_audit_reason():
    form = twilio_kind("text", From="whatsapp:+0000")
    events = twilio.parse(form)
    assert events.messages == [] and events.audit_reason() == (
        "not stored: message SMK01: sender 'whatsapp:+0000' is not an E.164 number")
