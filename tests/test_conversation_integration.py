"""Conversations through gunicorn and huey_consumer: a consumer killed between steps tells nobody twice."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import Order, OutboundMessage
from tests.support import META_PATH, meta_text_payload, signed_meta, wait_for
from tests.test_worker_integration import own_redis, post_meta_batch, senders, stack  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def post_meta_taps(base: str, taps: list[tuple[str, str]], prefix: str) -> None:
    """One signed Meta webhook carrying a button tap (sender, button id) from each sender."""
    payload = meta_text_payload("", f"{prefix}0", taps[0][0])
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"] = [
        {"from": sender, "id": f"{prefix}{i}", "timestamp": str(int(time.time())), "type": "interactive",
         "interactive": {"type": "button_reply", "button_reply": {"id": button, "title": "Confirm / Pakka"}}}
        for i, (sender, button) in enumerate(taps)]
    body, headers = signed_meta(payload)
    response = requests.post(base + META_PATH, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_orders_confirmed_by_taps_while_a_consumer_is_killed_tell_nobody_twice(stack, processes):  # noqa: F811
    stack.provider.delay = 0.05
    shops = senders(12)
    base = processes.gunicorn(stack.env, workers=1)
    first = processes.consumer(stack.env, periodic=False)
    post_meta_batch(base, shops)
    wait_for(lambda: stack.statuses()["completed"] == len(shops), "every order prompted", logs=[first])
    assert sorted(stack.provider.buttons) == sorted(shops)

    post_meta_taps(base, [(shop, stack.provider.buttons[shop][0]) for shop in shops], "wamid.TAP")
    wait_for(lambda: stack.statuses()["completed"] >= len(shops) + 3, "some confirmations",
             logs=[first])
    first.stop(sig=signal.SIGKILL)
    killed_at = time.monotonic()
    second = processes.consumer(stack.env, periodic=False)
    # The shops tap again (a repeated tap) while the second consumer catches up.
    post_meta_taps(base, [(shop, stack.provider.buttons[shop][0]) for shop in shops], "wamid.AGAIN")
    # What the killed consumer held (at most one message per thread: lost from the queue, or left
    # ``processing``) stays until the sweep, and so does the repeated tap of those shops, which
    # waits for it: everything else is done.
    wait_for(lambda: stack.statuses()["completed"] >= 3 * len(shops) - 4, "the rest of the queue",
             logs=[second])
    time.sleep(max(0.0, killed_at + 3 - time.monotonic()))
    stack.flask("webhooks", "sweep", "--after", "3")
    wait_for(lambda: stack.statuses()["completed"] == 3 * len(shops), "every message completed",
             logs=[second])

    with stack.app.app_context():
        assert Counter(db.session.scalars(select(Order.status))) == {"confirmed": len(shops)}
        kinds = Counter(db.session.scalars(select(OutboundMessage.kind)))
    # The repeated taps said nothing.
    assert kinds == {"confirmation": len(shops), "status_update": len(shops)}
    per_recipient = stack.provider.per_recipient()
    assert max(per_recipient.values()) <= 2  # the prompt and the one "confirmed", never a second one
    confirmed = Counter(r for _, r, body in stack.provider.replies if "is confirmed" in body)
    assert max(confirmed.values()) == 1
