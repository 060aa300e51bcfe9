"""``flask webhooks replay``, ``flask webhooks cleanup`` and ``flask webhooks sweep``."""

from __future__ import annotations

import re
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from khaacho.commands import webhooks
from khaacho.models import REPLAYABLE_STATUSES, SOURCES, utcnow
from khaacho.processing import cleanup as retention
from khaacho.processing import replay as replays
from khaacho.processing import sweep as sweeper
from khaacho.tasks import enqueue_messages

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """``90s``, ``30m``, ``24h`` or ``7d`` as a timedelta."""
    match = _DURATION.match(value)
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration like 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.command("replay")
@click.argument("message_ids", nargs=-1)
@click.option("--status", type=click.Choice(REPLAYABLE_STATUSES),
              help="Replay every message with this status.")
@click.option("--since", help="With --status: only messages received in this past period (30m, 24h, 7d).")
@click.option("--source", type=click.Choice(SOURCES), help="With --status: only messages from this provider.")
@with_appcontext
def replay_command(message_ids: tuple[str, ...], status: str | None, since: str | None,
                   source: str | None) -> None:
    """Re-queue dead, failed, rate_limited or stale messages.

    MESSAGE_ID is the webhook_messages.id (a number) or the provider's message id
    (wamid.… from Meta, SM… from Twilio). Or replay in bulk with --status [--since] [--source].
    A replayed message is processed normally: still at most one order and one reply.
    """
    if bool(message_ids) == bool(status):
        raise click.UsageError("give MESSAGE_ID… or --status, not both and not neither")
    if not status and (since or source):
        raise click.UsageError("--since and --source filter a bulk replay: use them with --status")
    if status:
        cutoff = utcnow() - parse_duration(since) if since else None
        results = replays.replay_matching(status, cutoff, source)
    else:
        results = replays.replay_refs(list(message_ids))
    for result in results:
        label = result.ref if result.message_id is None or result.ref == str(result.message_id) \
            else f"{result.ref} (id {result.message_id})"
        if result.queued:
            line = f"{label}: {result.previous} -> queued"
            click.echo(f"{line} ({result.reason})" if result.reason else line)
        else:
            click.echo(f"{label}: left alone: {result.reason}")
    queued = sum(result.queued for result in results)
    click.echo(f"{queued} re-queued, {len(results) - queued} left alone")


@click.command("cleanup")
@click.option("--days", type=click.IntRange(min=1),
              help="Keep this many days (default WEBHOOK_RETENTION_DAYS).")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@with_appcontext
def cleanup_command(days: int | None, dry_run: bool) -> None:
    """Delete webhook data older than N days, in batches, and print the count per table.

    Messages that became orders are kept with their order and reply.
    """
    days = days or current_app.config["WEBHOOK_RETENTION_DAYS"]
    counts = retention.cleanup(days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} rows older than {days} days{' (dry run: nothing deleted)' if dry_run else ''}:")
    width = max(len(table) for table in counts)
    for table, count in counts.items():
        click.echo(f"  {table:<{width}}  {count:>8}")


@click.command("sweep")
@click.option("--after", type=click.IntRange(min=0),
              help="Seconds a message may sit queued or processing (default SWEEP_AFTER_SECONDS).")
@with_appcontext
def sweep_command(after: int | None) -> None:
    """Re-queue stuck messages now, as the every-minute sweep does."""
    total = 0
    for batch in sweeper.requeue_stuck(after):
        total += enqueue_messages(batch)
    click.echo(f"re-queued {total} stuck messages")


def init_app(app: Flask) -> None:
    """Add the processing commands to the ``flask webhooks`` group."""
    for command in (replay_command, cleanup_command, sweep_command):
        webhooks.add_command(command)
