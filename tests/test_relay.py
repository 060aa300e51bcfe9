"""The outbox relay on each backend: what it queues, once, and what it leaves to the sweep."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from huey.storage import MemoryStorage
from sqlalchemy import text

from khaacho.extensions import db
from khaacho.models import WebhookMessage, one_of
from khaacho.processing import relay
from khaacho.tasks import sweep_stuck_messages
from tests.intake_support import hold_tasks
from tests.support import META_PATH, meta_text_payload, signed_meta


def post(app, message_id: str, sender: str = "9779841234567") -> None:
    body, headers = signed_meta(meta_text_payload("5 kg chini", message_id, sender=sender))
    client = FlaskClient(app, app.response_class)  # Flask's own client: these tests relay themselves
    assert client.post(META_PATH, data=body, headers=headers).status_code == 200


def rows(app, sql: str) -> list[tuple]:
    with app.app_context():
        found = [tuple(r) for r in db.session.execute(text(sql))]
        db.session.remove()
        return found


def drain(app) -> int:
    with app.app_context():
        return relay.drain()


@pytest.fixture
def queue(any_app, monkeypatch):
    """Queued message ids, held in memory instead of processed."""
    return hold_tasks(monkeypatch)


def test_a_stored_message_waits_for_the_relay_and_is_queued_once(any_app, queue):
    post(any_app, "wamid.one")
    assert queue() == []  # the web request queued nothing
    assert rows(any_app, "SELECT status, relayed_at IS NULL FROM webhook_messages") == [("queued", True)]
    assert drain(any_app) == 1
    assert drain(any_app) == 0
    assert queue() == [1]
    assert rows(any_app, "SELECT status, relayed_at IS NULL FROM webhook_messages") == [("queued", False)]


def test_a_redelivery_after_the_relay_ran_is_not_queued_again(any_app, queue):
    post(any_app, "wamid.again")
    drain(any_app)
    post(any_app, "wamid.again")
    assert drain(any_app) == 0
    assert queue() == [1]


def test_a_replayed_rate_limited_message_is_queued_by_the_replay_not_again_by_the_relay(any_app, queue):
    any_app.config.update(WEBHOOK_RATE_LIMIT_MAX=1)
    post(any_app, "wamid.first")
    post(any_app, "wamid.second")
    drain(any_app)
    assert rows(any_app, "SELECT id, status FROM webhook_messages ORDER BY id") == [
        (1, "queued"), (2, "rate_limited")]
    result = any_app.test_cli_runner().invoke(args=["webhooks", "replay", "2"])
    assert "2: rate_limited -> queued" in result.output
    assert drain(any_app) == 0
    assert queue() == [1, 2]


def test_a_queue_outage_leaves_claimed_messages_for_the_sweep(any_app, monkeypatch):
    class DeadQueue(MemoryStorage):
        def enqueue(self, data, priority=None):
            raise ConnectionError("queue down")

    hold_tasks(monkeypatch, DeadQueue("dead"))
    post(any_app, "wamid.lost")
    assert drain(any_app) == 1
    assert rows(any_app, "SELECT status FROM webhook_messages") == [("queued",)]

    queue = hold_tasks(monkeypatch)  # the queue is back
    any_app.config.update(SWEEP_AFTER_SECONDS=0)  # overdue at once
    sweep_stuck_messages.call_local()
    assert queue() == [1]
    assert drain(any_app) == 0  # the swept row is not the relay's any more


def test_the_relay_orders_each_senders_messages_and_limits_each_sender_alone(any_app, queue):
    any_app.config.update(WEBHOOK_RATE_LIMIT_MAX=2)
    for i in range(3):
        post(any_app, f"wamid.a{i}", sender="9779841111111")
        post(any_app, f"wamid.b{i}", sender="9779842222222")
    drain(any_app)
    assert rows(any_app, "SELECT message_id, status FROM webhook_messages WHERE status <> 'queued' "
                         "ORDER BY id") == [("wamid.a2", "rate_limited"), ("wamid.b2", "rate_limited")]
    assert len(queue()) == 4
    assert rows(any_app, "SELECT phone_number, request_count, blocked_count FROM webhook_rate_limits "
                         "ORDER BY phone_number") == [("+9779841111111", 3, 1), ("+9779842222222", 3, 1)]


def test_fixed_statuses_are_written_into_the_sql_and_nothing_else_can_be():
    """The relay's and the worker's status conditions name their statuses as SQL constants (so a
    prepared statement's generic plan can use the partial indexes); only plain names are taken."""
    status = WebhookMessage.__table__.c.status
    sql = str(one_of(status, ["queued", "failed"]).compile(compile_kwargs={"literal_binds": False}))
    assert sql == "webhook_messages.status IN ('queued', 'failed')"
    with pytest.raises(ValueError):
        one_of(status, ["queued') OR ('1' = '1"])
