"""Huey tasks. Imported by ``wsgi.py`` so the consumer and the web app share one registry.

The bodies are thin: the work is in ``khaacho.processing`` and ``khaacho.ops``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from huey import crontab

from khaacho.ops import alerts, heartbeat, release, rollup, switches
from khaacho.processing import cleanup, expiry, sweep, worker
from khaacho.queue import app_periodic_task, app_task
from khaacho.replies import notices

log = logging.getLogger(__name__)


@app_task()
def process_message(message_id: int) -> None:
    """Turn one received message into its order and confirmation (safe to run more than once).

    While processing is paused the message is left ``queued``: resuming queues it again.
    """
    outcome = worker.process(message_id)
    if outcome.due is not None:
        heartbeat.observe_wait(outcome.due)
    if outcome.retry_in is not None:
        # Scheduled in the queue; should the queue lose it, the sweep finds the overdue retry.
        process_message.schedule(args=(message_id,), delay=outcome.retry_in)
    if outcome.successor is not None:
        process_message(outcome.successor)


def enqueue_messages(message_ids: Iterable[int]) -> int:
    """Queue ``process_message`` for each id; returns how many were queued."""
    queued = 0
    for message_id in message_ids:
        process_message(message_id)
        queued += 1
    return queued


@app_task()
def release_queued_messages() -> None:
    """After processing resumes: queue again what paused tasks left ``queued`` (the relay takes the rest)."""
    for batch in release.queued_batches():
        if switches.is_paused(switches.PROCESSING):
            return
        enqueue_messages(batch)


@app_task(retries=5, retry_delay=30)
def send_held_reply(outbound_id: int) -> None:
    """Send one reply held while replies were paused (once, whichever consumer runs it)."""
    release.send_held(outbound_id)


@app_task()
def release_held_replies() -> None:
    """After replies resume: queue the sending of every held reply."""
    for batch in release.held_batches():
        for outbound_id in batch:
            send_held_reply(outbound_id)


@app_periodic_task(crontab())
def sweep_stuck_messages() -> None:
    """Every minute: re-queue messages a killed worker or a queue outage left behind (not while paused)."""
    if switches.is_paused(switches.PROCESSING):
        return
    for batch in sweep.requeue_stuck():
        enqueue_messages(batch)


@app_periodic_task(crontab())
def operations_minute() -> None:
    """Every minute: fold the audit log into the request totals, take the counts, evaluate the alerts."""
    rollup.roll_up()
    alerts.evaluate()


@app_periodic_task(crontab(minute="*/5"))
def expire_pending_orders() -> None:
    """Every 5 minutes: pending orders unconfirmed for ORDER_CONFIRM_HOURS expire; the shop is told once.

    Notices whose send task was lost (Redis down, a consumer killed) are queued again.
    """
    expiry.expire_pending()
    notices.resend_stalled(timedelta(seconds=current_app.config["SWEEP_AFTER_SECONDS"]))


@app_periodic_task(crontab(minute="0", hour="3", day_of_week="1"))
def weekly_cleanup() -> None:
    """Mondays 03:00 UTC: delete webhook data older than WEBHOOK_RETENTION_DAYS."""
    cleanup.cleanup(current_app.config["WEBHOOK_RETENTION_DAYS"])
