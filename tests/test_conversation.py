"""The order as a conversation on both backends: each step a signed webhook, each reply a real HTTP call."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, text, update

from khaacho.dashboard.cli import answered
from khaacho.dashboard.simulate import TrafficBuilder
from khaacho.extensions import db
from khaacho.models import Order, Product, utcnow
from khaacho.orders.catalog import import_catalog
from khaacho.processing import worker
from tests.conftest import SECRETS
from tests.conversation_support import Chat
from tests.processing_support import ORDER_TEXT, add_message

WAI_WAI = "2 packet wai wai pani"


def test_meta_order_waits_pending_until_the_confirm_tap_and_is_answered_once(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    [prompt] = chat.replies()
    [(order_id, status, version, total)] = chat.orders()
    assert (status, version, total) == ("pending", 1, "1900.00")
    assert prompt.buttons == [f"order:{order_id}:v1:confirm", f"order:{order_id}:v1:change",
                              f"order:{order_id}:v1:cancel"]
    assert "Total / Jamma: NPR 1,900.00" in prompt.body

    chat.tap(prompt.buttons[0])
    [answer] = chat.replies()
    assert f"Order #{order_id} is confirmed" in answer.body and not answer.buttons
    chat.tap(prompt.buttons[0])  # the shop taps again: nothing happens, nobody is told twice
    assert chat.replies() == [] and chat.orders()[0][1] == "confirmed"


def test_twilio_order_is_confirmed_by_a_typed_answer(shop, httpserver):
    chat = Chat(shop, httpserver, "twilio")
    chat.say(ORDER_TEXT)
    [prompt] = chat.replies()
    assert prompt.body.endswith("1 = pakka, 2 = badalne, 3 = radda")

    chat.say("1")
    [answer] = chat.replies()
    assert "is confirmed" in answer.body and chat.orders()[0][1] == "confirmed"
    chat.say("yes")  # a second "yes" confirms nothing more
    assert chat.replies() == [] and len(chat.orders()) == 1


def test_meta_cancel_tap_cancels_the_pending_order(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    [prompt] = chat.replies()
    chat.tap(prompt.buttons[2], "Cancel")
    [answer] = chat.replies()
    assert "is cancelled" in answer.body and chat.orders()[0][1] == "cancelled"
    chat.tap(prompt.buttons[0])  # confirming a cancelled order does nothing
    assert chat.replies() == [] and chat.orders()[0][1] == "cancelled"


@pytest.mark.parametrize("word", ["3", "radda", "cancel my last order", "रद्द"])
def test_twilio_typed_cancel_cancels_the_pending_order(shop, httpserver, word):
    chat = Chat(shop, httpserver, "twilio")
    chat.say(ORDER_TEXT)
    chat.replies()
    chat.say(word)
    [answer] = chat.replies()
    assert chat.orders()[0][1] == "cancelled"
    assert "cancelled" in answer.body or "रद्द" in answer.body


def test_a_confirmed_order_is_cancelled_until_it_is_dispatched(shop, httpserver):
    chat = Chat(shop, httpserver, "twilio")
    chat.say(ORDER_TEXT)
    chat.say("ok")
    chat.say("cancel")
    assert chat.orders()[0][1] == "cancelled"
    chat.say("5 kg chini")
    chat.say("ho")
    with shop.app_context():
        db.session.execute(update(Order).where(Order.status == "confirmed").values(status="dispatched"))
        db.session.commit()
    chat.replies()
    chat.say("cancel")
    [answer] = chat.replies()
    assert "can no longer be cancelled" in answer.body and chat.orders()[1][1] == "dispatched"


def test_a_follow_up_within_the_merge_window_amends_and_old_buttons_stop_confirming(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    [first] = chat.replies()
    chat.say(WAI_WAI)
    [second] = chat.replies()
    [(order_id, status, version, total)] = chat.orders()
    assert (status, version, total) == ("pending", 2, "1950.00")  # + 2 packets of Wai Wai at 25
    assert second.buttons[0] == f"order:{order_id}:v2:confirm" and "(v2)" in second.body

    chat.tap(first.buttons[0])  # the v1 button only shows the current version
    [current] = chat.replies()
    assert "this is the current one" in current.body and current.buttons == second.buttons
    assert chat.orders()[0][1] == "pending"
    chat.tap(second.buttons[0])
    assert "is confirmed" in chat.replies()[0].body and chat.orders()[0][1] == "confirmed"


def test_a_reply_to_the_confirmation_amends_that_order_even_after_the_merge_window(shop, httpserver):
    shop.config["ORDER_MERGE_MINUTES"] = 0
    chat = Chat(shop, httpserver, "twilio")
    chat.say(ORDER_TEXT)
    [first] = chat.replies()
    chat.say(WAI_WAI, context=first.provider_id)
    [(_, status, version, total)] = chat.orders()
    assert (status, version, total) == ("pending", 2, "1950.00")
    chat.say("5 kg chini")  # no context and past the window: a new order
    assert [o[2] for o in chat.orders()] == [2, 1]


def test_change_asks_what_to_change_and_the_next_text_amends(shop, httpserver):
    shop.config["ORDER_MERGE_MINUTES"] = 0
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    [prompt] = chat.replies()
    chat.tap(prompt.buttons[1], "Change")
    [question] = chat.replies()
    assert "what should we change?" in question.body
    shop.config["ORDER_MERGE_MINUTES"] = 15
    chat.say("chini 20 kg")
    [(_, _, version, total)] = chat.orders()
    assert (version, total) == (2, "3000.00")  # sugar now 20 kg at 110, dal unchanged


def test_a_line_that_fits_several_products_is_asked_and_the_pick_resolves_it(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say("10 kg chini\n5 kg dal")
    [question] = chat.replies()
    assert 'which one do you mean by "5 kg dal"' in question.body and not question.buttons
    row = next(row_id for row_id, title in question.rows if title == "Mung Dal")
    assert question.rows[-1][1] == "None of these" and len(question.rows) <= 10

    chat.tap(prompt_confirm := f"order:{chat.orders()[0][0]}:v1:confirm")  # confirming now only asks again
    assert 'which one do you mean by "5 kg dal"' in chat.replies()[0].body
    assert chat.orders()[0][1] == "pending"
    chat.pick(row, "Mung Dal")
    [confirmation] = chat.replies()
    assert "Mung Dal: 5 kg" in confirmation.body and confirmation.buttons[0] == prompt_confirm
    chat.tap(prompt_confirm)
    assert chat.orders()[0][1] == "confirmed"


def test_a_follow_up_prompt_shows_the_merged_lines_and_asks_about_its_unclear_one(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.replies()
    chat.say("chini 20 kg\n5 kg dal")  # sugar's quantity changes; "dal" fits several products
    [question] = chat.replies()
    [(order_id, _, version, total)] = chat.orders()
    assert (version, total) == (2, "3000.00")
    assert 'which one do you mean by "5 kg dal"' in question.body
    row = next(row_id for row_id, title in question.rows if title == "Mung Dal")
    assert row.startswith(f"order:{order_id}:v2:pick:")
    chat.pick(row, "Mung Dal")
    [confirmation] = chat.replies()
    body = confirmation.body
    assert body.count("Sugar: 20 kg") == 1 and "Red Lentils (Musuro Dal): 5 kg" in body
    assert "Mung Dal: 5 kg" in body and "Total / Jamma: NPR 4,000.00" in body
    assert body.index("Sugar") < body.index("Red Lentils") < body.index("Mung Dal")  # in the order they came


def test_twilio_clarification_is_a_numbered_list_answered_by_number(shop, httpserver):
    chat = Chat(shop, httpserver, "twilio")
    chat.say("10 kg chini\n5 kg dal")
    [question] = chat.replies()
    assert "0. None of these" in question.body
    chat.say("0")  # none of these: the line is dropped
    [confirmation] = chat.replies()
    assert "Sugar: 10 kg" in confirmation.body and "Dal" not in confirmation.body
    assert chat.orders()[0][3] == "1100.00"


def test_an_edit_changes_a_pending_order_and_a_delete_cancels_it(shop, httpserver):
    chat = Chat(shop, httpserver)
    original = chat.say(ORDER_TEXT)
    chat.replies()
    chat.edit(original, "3 kg chini")
    [confirmation] = chat.replies()
    assert chat.orders()[0][1:] == ("pending", 2, "330.00") and "(v2)" in confirmation.body
    chat.delete(original)
    [answer] = chat.replies()
    assert "is cancelled" in answer.body and chat.orders()[0][1] == "cancelled"


def test_same_as_last_time_is_a_pending_copy_at_todays_prices(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say(ORDER_TEXT)
    chat.tap(chat.replies()[0].buttons[0])
    with shop.app_context():
        db.session.execute(update(Product).where(Product.sku == "SUGAR").values(price=Decimal("120.00")))
        db.session.commit()
    chat.replies()
    chat.say("pahile jastai")
    [prompt] = chat.replies()
    assert [o[1:] for o in chat.orders()] == [("confirmed", 1, "1900.00"), ("pending", 1, "2000.00")]
    assert "Sugar: 10 kg × NPR 120.00" in prompt.body and prompt.buttons


def test_a_catalog_import_applies_from_the_next_message(shop, httpserver, tmp_path):
    chat = Chat(shop, httpserver)
    chat.say("5 kg chini")
    [before] = chat.replies()
    assert "Sugar: 5 kg × NPR 110.00" in before.body
    chat.tap(before.buttons[0])
    chat.replies()
    repriced = tmp_path / "catalog.csv"
    repriced.write_text("sku,name,aliases,unit,price\nSUGAR,Sugar,chini|चिनी,kg,125\n"
                        "JAGGERY,Jaggery,sakhar|chaku,kg,180\n", encoding="utf-8")
    with shop.app_context():
        import_catalog(repriced)
    chat.say("5 kg chini, 2 kg sakhar")
    [after] = chat.replies()
    assert "Sugar: 5 kg × NPR 125.00" in after.body and "Jaggery: 2 kg × NPR 180.00" in after.body
    assert chat.orders()[1][1:] == ("pending", 1, "985.00")


def test_a_product_withdrawn_with_sql_that_stamps_updated_at_is_not_ordered_from_the_next_message(
        shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say("5 kg chini")
    [prompt] = chat.replies()
    assert "Sugar: 5 kg" in prompt.body
    chat.tap(prompt.buttons[2], "Cancel")
    chat.replies()
    withdraw = text("UPDATE products SET active = false, updated_at = :now WHERE sku = 'SUGAR'").bindparams(
        bindparam("now", type_=Product.updated_at.type))  # SQL that stamps updated_at, as docs/data.md asks
    with shop.app_context():
        db.session.execute(withdraw, {"now": utcnow()})
        db.session.commit()
    chat.say("5 kg chini")
    [answer] = chat.replies()
    assert "Sugar" not in answer.body and [o[1] for o in chat.orders()] == ["cancelled"]


def test_a_price_question_is_answered_from_the_catalog_without_an_order(shop, httpserver):
    chat = Chat(shop, httpserver, "twilio")
    chat.say("chini ko rate?")
    [answer] = chat.replies()
    assert "Sugar: NPR 110.00 / kg" in answer.body and chat.orders() == []


def test_a_devanagari_order_is_answered_in_devanagari(shop, httpserver):
    chat = Chat(shop, httpserver)
    chat.say("चिनी ५ केजी")
    [prompt] = chat.replies()
    assert "कृपया हेरेर पक्का गर्नुहोस्" in prompt.body
    titles = [b["reply"]["title"] for b in prompt.raw["interactive"]["action"]["buttons"]]
    assert titles == ["Confirm / पक्का", "Change / बदल्ने", "Cancel / रद्द"]
    chat.tap(prompt.buttons[0])
    assert "पक्का भयो" in chat.replies()[0].body


def test_a_shops_messages_take_effect_in_the_order_it_sent_them(shop, httpserver):
    """ "2 kg chini" then "cancel", delivered the other way round: the cancel waits for the order."""
    chat = Chat(shop, httpserver, "twilio")
    sent_at = utcnow() - timedelta(seconds=5)
    relayed = {"source": "twilio", "relayed_at": sent_at}
    cancel = add_message(shop, "cancel", message_timestamp=sent_at + timedelta(seconds=1), **relayed)
    order = add_message(shop, "2 kg chini", message_timestamp=sent_at, **relayed)
    other = add_message(shop, "3 kg chini", phone="+9779851111111",
                        message_timestamp=sent_at + timedelta(seconds=2), **relayed)

    with shop.app_context():
        waiting = worker.process(cancel)
        elsewhere = worker.process(other)  # another shop never waits for this one
        first = worker.process(order)
        then = worker.process(cancel)
    assert (waiting.status, waiting.retry_in is not None) == ("waiting", True)
    assert elsewhere.status == "completed"
    assert (first.status, first.successor) == ("completed", cancel)  # queued at once, not after its retry
    assert then.status == "completed"
    assert [o[1] for o in chat.orders()] == ["pending", "cancelled"]  # the other shop's, then this one's
    assert "cancelled" in chat.replies()[-1].body


def test_simulate_plays_whole_conversations_against_the_instance(shop, httpserver):
    """``make simulate``'s traffic answers what the instance asked: taps, picks, typed answers."""
    chat = Chat(shop, httpserver)  # the loopback provider
    client = shop.test_client()
    with shop.app_context():
        builder = TrafficBuilder("http://localhost", SECRETS["WHATSAPP_APP_SECRET"],
                                 SECRETS["TWILIO_AUTH_TOKEN"], SECRETS["TWILIO_WHATSAPP_NUMBER"], seed=11,
                                 lookup=answered)
        for kind in ["order", "twilio"] * 15:
            delivery = builder.build(kind)
            assert client.post(delivery.path, data=delivery.body, headers=delivery.headers).status_code == 200
    steps = [d for d in builder.sent if d.kind == "conversation"]
    assert len(steps) >= 10
    statuses = {status for _, status, _, _ in chat.orders()}
    assert "confirmed" in statuses and chat.sent
