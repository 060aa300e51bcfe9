"""Huey tasks. Imported by ``wsgi.py`` so the consumer and the web app share one registry.

The bodies are thin: the work is in ``khaacho.processing``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from huey import crontab

from khaacho.processing import cleanup, sweep, worker
from khaacho.queue import app_periodic_task, app_task


@app_task()
def process_message(message_id: int) -> None:
    """Turn one received message into its order and confirmation (safe to run more than once)."""
    outcome = worker.process(message_id)
    if outcome.retry_in is not None:
        # Scheduled in the queue; should the queue lose it, the sweep finds the overdue retry.
        process_message.schedule(args=(message_id,), delay=outcome.retry_in)


def enqueue_messages(message_ids: Iterable[int]) -> int:
    """Queue ``process_message`` for each id; returns how many were queued."""
    queued = 0
    for message_id in message_ids:
        process_message(message_id)
        queued += 1
    return queued


@app_periodic_task(crontab())
def sweep_stuck_messages() -> None:
    """Every minute: re-queue messages a killed worker or a queue outage left behind."""
    for batch in sweep.requeue_stuck():
        enqueue_messages(batch)


@app_periodic_task(crontab(minute="0", hour="3", day_of_week="1"))
def weekly_cleanup() -> None:
    """Mondays 03:00 UTC: delete webhook data older than WEBHOOK_RETENTION_DAYS."""
    cleanup.cleanup(current_app.config["WEBHOOK_RETENTION_DAYS"])
