"""Shops: one per WhatsApp customer, kept by the worker from the messages it processes."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import Order, OutboundMessage, Shop, utcnow
from khaacho.processing import shops as shop_rows
from khaacho.processing import worker
from tests.intake_support import hold_tasks
from tests.kinds_support import post_kind, shops
from tests.processing_support import meta_ok, twilio_ok

USER_ID = "NP.13491208655302741918"


def _process(app, row_id: int) -> str:
    with app.app_context():
        return worker.process(row_id).status


def test_a_message_carrying_phone_and_user_id_links_them_on_one_shop(shop, httpserver, monkeypatch):
    meta_ok(httpserver)
    hold_tasks(monkeypatch)
    assert _process(shop, post_kind(shop, "whatsapp", "text")) == "completed"
    assert shops(shop) == [("+9779841234567", USER_ID, "Hari Kirana Pasal", None, None, None)]
    with shop.app_context():
        shop_id = db.session.scalar(select(Shop.id))
        assert db.session.scalar(select(Order.shop_id)) == shop_id
        assert db.session.scalar(select(OutboundMessage.shop_id)) == shop_id


def test_a_username_shop_gets_its_phone_when_a_message_carries_both(shop, httpserver, monkeypatch):
    meta_ok(httpserver)
    hold_tasks(monkeypatch)
    assert _process(shop, post_kind(shop, "whatsapp", "reaction")) == "ignored"
    assert shops(shop) == [(None, USER_ID, "ram_store", None, None, None)]

    assert _process(shop, post_kind(shop, "whatsapp", "text")) == "completed"
    assert shops(shop) == [("+9779841234567", USER_ID, "Hari Kirana Pasal", None, None, None)]


def test_the_profile_name_is_kept_current(shop, httpserver, monkeypatch):
    twilio_ok(httpserver)
    hold_tasks(monkeypatch)
    _process(shop, post_kind(shop, "twilio", "text"))
    _process(shop, post_kind(shop, "twilio", "text", MessageSid="SMK99", ProfileName="Hari Kirana & Sons"))
    _process(shop, post_kind(shop, "twilio", "text", MessageSid="SMK98", ProfileName=""))
    assert [row[:3] for row in shops(shop)] == [("+9779841234567", None, "Hari Kirana & Sons")]


def test_user_changed_number_moves_the_shop_and_its_orders_follow(shop, httpserver, monkeypatch):
    meta_ok(httpserver)
    hold_tasks(monkeypatch)
    _process(shop, post_kind(shop, "whatsapp", "text"))
    with shop.app_context():
        shop_id = db.session.scalar(select(Shop.id))

    assert _process(shop, post_kind(shop, "whatsapp", "system_changed_number")) == "ignored"

    assert [row[0] for row in shops(shop)] == ["+9779812340000"]
    with shop.app_context():
        assert db.session.scalar(select(Shop.id)) == shop_id
        assert db.session.scalar(select(Order.shop_id)) == shop_id
        note = db.session.scalar(select(worker.WebhookMessage.error_message)
                                 .where(worker.WebhookMessage.message_id == "wamid.K23"))
    assert note == ("system message (user_changed_number); "
                    "shop moved from +9779841234567 to +9779812340000")


def test_last_inbound_at_never_moves_back_for_a_late_older_message(any_app):
    now = utcnow()
    with any_app.app_context():
        first = shop_rows.upsert("+9779841234567", None, "Hari", now)
        again = shop_rows.upsert("+9779841234567", None, None, now - timedelta(hours=3))
        db.session.commit()
        stored = db.session.get(Shop, first)
        assert again == first and stored.profile_name == "Hari"
        seen = stored.last_inbound_at
        assert (seen if seen.tzinfo else seen.replace(tzinfo=UTC)) == now  # SQLite keeps naive UTC


def test_consumers_upserting_the_same_new_shop_at_once_make_one_row(pg_app):
    """Eight workers meet a shop's first messages at the same moment: the unique phone decides."""
    barrier = threading.Barrier(8)
    ids, errors = [], []

    def upsert(n: int) -> None:
        with pg_app.app_context():
            try:
                barrier.wait()
                ids.append(shop_rows.upsert("+9779841234567", None, f"name {n}", utcnow()))
                db.session.commit()
            except Exception as exc:  # a lost race would show here
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=upsert, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [] and len(set(ids)) == 1
    assert len(shops(pg_app)) == 1
