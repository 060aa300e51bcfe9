"""Pause switches: processing and replies, from the CLI and the dashboard, nothing lost or doubled."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage, utcnow
from khaacho.ops import release, switches
from khaacho.processing import relay
from khaacho.tasks import process_message, sweep_stuck_messages
from tests.processing_support import ORDER_TEXT, add_message, load, meta_ok, provider_requests
from tests.support import META_PATH, meta_text_payload, signed_meta
from tests.test_auth import login, page_token


def statuses(app, table=WebhookMessage) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(table.status).order_by(table.id)))


def deliver(app, n: int) -> None:
    client = app.test_client()
    for i in range(n):
        body, headers = signed_meta(meta_text_payload(ORDER_TEXT, f"wamid.P{i}"))
        assert client.post(META_PATH, data=body, headers=headers).status_code == 200


def test_paused_processing_stores_and_acks_then_resume_processes_each_once(shop, httpserver):
    meta_ok(httpserver)
    runner = shop.test_cli_runner()
    assert "processing paused" in runner.invoke(args=["webhooks", "pause", "processing"]).output
    # Relayed before the pause, its task ran while paused and left it queued.
    relayed = add_message(shop, ORDER_TEXT, relayed_at=utcnow())
    process_message(relayed)
    deliver(shop, 3)  # the relay claims nothing while paused
    assert statuses(shop) == ["queued"] * 4
    assert provider_requests(httpserver) == []
    result = runner.invoke(args=["webhooks", "resume", "processing"])
    assert result.exit_code == 0 and "processing resumed" in result.output
    assert statuses(shop) == ["completed", "queued", "queued", "queued"]  # the resume queued its own
    with shop.app_context():
        relay.drain()  # the consumer's relay, at its next look, takes the ones it never claimed
    assert statuses(shop) == ["completed"] * 4
    assert len(provider_requests(httpserver)) == 4
    assert "was not paused" in runner.invoke(args=["webhooks", "resume", "processing"]).output
    with shop.app_context():
        relay.drain()
    assert len(provider_requests(httpserver)) == 4


def test_a_task_that_runs_while_paused_leaves_its_message_untouched(shop, httpserver):
    message_id = add_message(shop, ORDER_TEXT)
    before, _order, _reply = load(shop, message_id)
    with shop.app_context():
        switches.set_paused(switches.PROCESSING, True, "test")
    process_message(message_id)
    after, order, reply = load(shop, message_id)
    assert (after.status, after.attempts, after.updated_at) == ("queued", 0, before.updated_at)
    assert order is None and reply is None


def test_the_sweep_leaves_stuck_messages_alone_while_processing_is_paused(shop, httpserver):
    meta_ok(httpserver)
    message_id = add_message(shop, ORDER_TEXT, age=timedelta(hours=1))
    with shop.app_context():
        switches.set_paused(switches.PROCESSING, True, "test")
    sweep_stuck_messages.call_local()
    assert load(shop, message_id)[0].status == "queued"
    assert provider_requests(httpserver) == []
    with shop.app_context():
        switches.set_paused(switches.PROCESSING, False, "test")
    sweep_stuck_messages.call_local()
    assert load(shop, message_id)[0].status == "completed"


def test_paused_replies_are_held_then_sent_once_each_on_resume(shop, httpserver):
    meta_ok(httpserver)
    runner = shop.test_cli_runner()
    runner.invoke(args=["webhooks", "pause", "replies"])
    deliver(shop, 3)
    assert statuses(shop) == ["completed"] * 3
    assert statuses(shop, OutboundMessage) == ["held"] * 3
    assert provider_requests(httpserver) == []
    assert "held replies queued" in runner.invoke(args=["webhooks", "resume", "replies"]).output
    assert statuses(shop, OutboundMessage) == ["sent"] * 3
    assert len(provider_requests(httpserver)) == 3
    with shop.app_context():  # a second release (another consumer, a repeated resume) sends nothing
        assert [release.send_held(i) for batch in release.held_batches() for i in batch] == []
        ids = list(db.session.scalars(select(OutboundMessage.id)))
        assert [release.send_held(i) for i in ids] == ["skipped"] * 3
    assert len(provider_requests(httpserver)) == 3


def test_a_held_reply_claimed_by_two_consumers_at_once_goes_out_once(shop, httpserver):
    meta_ok(httpserver)
    with shop.app_context():
        switches.set_paused(switches.REPLIES, True, "test")
    deliver(shop, 1)
    with shop.app_context():
        switches.set_paused(switches.REPLIES, False, "test")
        outbound_id = db.session.scalar(select(OutboundMessage.id))
    results, start = [], threading.Barrier(2)

    def consumer():
        with shop.app_context():
            start.wait()
            results.append(release.send_held(outbound_id))
            db.session.remove()

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["sent", "skipped"]
    assert len(provider_requests(httpserver)) == 1


def test_a_held_reply_stays_held_while_replies_are_still_paused(shop, httpserver):
    meta_ok(httpserver)
    with shop.app_context():
        switches.set_paused(switches.REPLIES, True, "test")
    deliver(shop, 1)
    with shop.app_context():
        outbound_id = db.session.scalar(select(OutboundMessage.id))
        assert release.send_held(outbound_id) == "held"
    assert statuses(shop, OutboundMessage) == ["held"] and provider_requests(httpserver) == []


@pytest.fixture
def signed_in(app, make_user):
    def sign_in(role: str):
        client = app.test_client()
        make_user(f"{role}@khaacho.local", role=role)
        login(client, f"{role}@khaacho.local")
        return client
    return sign_in


def test_admins_pause_from_the_dashboard_and_everyone_sees_it(app, signed_in):
    admin = signed_in("admin")
    token = page_token(admin)
    response = admin.post("/dashboard/switches/replies", data={"action": "pause"},
                          headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200 and 'data-switch="replies"' in response.get_data(as_text=True)
    with app.app_context():
        assert switches.is_paused(switches.REPLIES) and not switches.is_paused(switches.PROCESSING)
    viewer = signed_in("viewer")
    html = viewer.get("/dashboard").get_data(as_text=True)
    assert "switch--paused" in html and "by admin@khaacho.local" in html
    assert "Resume replies" not in html  # a viewer sees the state, not the buttons
    assert viewer.post("/dashboard/switches/replies", data={"action": "resume"},
                       headers={"X-CSRFToken": page_token(viewer)}).status_code == 403
    assert admin.post("/dashboard/switches/replies", data={"action": "resume"}).status_code == 400  # no CSRF
    assert admin.post("/dashboard/switches/everything", data={"action": "pause"},
                      headers={"X-CSRFToken": token}).status_code == 400
    with app.app_context():
        assert switches.is_paused(switches.REPLIES)
