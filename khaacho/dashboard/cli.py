"""``flask webhooks stats`` and ``flask webhooks simulate``."""

from __future__ import annotations

import time
from collections import Counter

import click
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from khaacho import stats
from khaacho.commands import webhooks
from khaacho.dashboard.simulate import TrafficBuilder, kinds
from khaacho.extensions import db
from khaacho.models import OutboundMessage, WebhookMessage

SECTIONS = (
    ("processing", "Processing by status"),
    ("security", "Security per hour"),
    ("performance", "Performance per hour and endpoint"),
    ("rate_limits", "Top senders (rate limits)"),
)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as an aligned text table (numbers right-aligned)."""
    if not rows:
        return "  (no data)"
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[c], int | float) or row[c] is None for row in rows) for c in columns]

    def line(values: list[str]) -> str:
        return "  " + "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(v) for v in cells)])


@click.command("stats")
@with_appcontext
@click.option("--hours", type=click.IntRange(1, stats.MAX_HOURS), default=24, show_default=True,
              help="How far back to look.")
@click.option("--source", type=click.Choice(stats.SOURCES), default="all", show_default=True)
def stats_command(hours: int, source: str) -> None:
    """Print the webhook stats (the same as the stats API) as tables."""
    data = stats.all_stats(source, hours)
    click.echo(f"Webhook stats for the last {hours} h (source: {source})")
    for key, title in SECTIONS:
        click.echo(f"\n{title}")
        click.echo(format_table(data[key]))


def answered(source: str, message_id: str) -> tuple[str, str, dict | None] | None:
    """What the instance answered one of the simulated messages: kind, text and buttons or list."""
    row = db.session.execute(
        select(OutboundMessage.kind, OutboundMessage.body, OutboundMessage.payload)
        .join(WebhookMessage, WebhookMessage.id == OutboundMessage.webhook_message_id)
        .where(WebhookMessage.message_id == message_id, WebhookMessage.webhook_source == source)
    ).one_or_none()
    db.session.rollback()  # the next look sees what the instance has written since
    return None if row is None else (row.kind, row.body, row.payload)


@click.command("simulate")
@with_appcontext
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="Base URL of the running instance.")
@click.option("--count", type=click.IntRange(1, 1000), default=30, show_default=True,
              help="Requests to send.")
@click.option("--rate", type=click.FloatRange(0.1, 50), default=5.0, show_default=True,
              help="Requests per second.")
@click.option("--seed", type=int, help="Random seed, for the same traffic every time.")
def simulate_command(url: str, count: int, rate: float, seed: int | None) -> None:
    """Post realistic signed webhooks to a running instance so the dashboard comes alive.

    Orders in English, romanized Nepali and Devanagari from several shops, played as conversations
    (the shop taps Confirm, Change or Cancel, picks from a list, types 1/2/3, follows up, asks a
    price, repeats its last order) as the instance answers them, every other kind of
    message (carts, locations, photos, voice notes, taps, edits, deletions, reactions, stickers,
    group and system messages, messages with errors), redeliveries (duplicates), a burst from
    one shop, a forged signature, Twilio messages and status callbacks, signed with
    WHATSAPP_APP_SECRET (first secret) and TWILIO_AUTH_TOKEN.
    """
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("use an http:// or https:// URL", param_hint="--url")
    config = current_app.config
    if not config["WHATSAPP_APP_SECRETS"]:
        raise click.ClickException("WHATSAPP_APP_SECRET is not set: the instance would refuse every request")
    if not config["TWILIO_AUTH_TOKEN"]:
        click.echo("TWILIO_AUTH_TOKEN is not set: sending Meta traffic only")
    builder = TrafficBuilder(url, config["WHATSAPP_APP_SECRETS"][0], config["TWILIO_AUTH_TOKEN"],
                             config["TWILIO_WHATSAPP_NUMBER"] or "whatsapp:+14155238886", seed,
                             lookup=answered)
    results: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()
    with requests.Session() as session:
        for index, kind in enumerate(kinds(count)):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            delivery = builder.build(kind)
            try:
                response = session.post(url.rstrip("/") + delivery.path, data=delivery.body,
                                        headers=delivery.headers, timeout=10)
            except requests.RequestException as exc:
                raise click.ClickException(
                    f"cannot reach {url} ({type(exc).__name__}); is the app running (make run)?"
                ) from None
            results[(delivery.kind, response.status_code)] += 1
            click.echo(f"{index + 1:4d} {delivery.kind:<20} {response.status_code}  {delivery.note}")
    click.echo(f"\nsent {count} requests in {time.monotonic() - started:.1f} s:")
    for (kind, status), n in sorted(results.items()):
        click.echo(f"  {kind:<20} {status}  x{n}")


def init_app(app: Flask) -> None:
    """Add ``stats`` and ``simulate`` to the ``flask webhooks`` group."""
    webhooks.add_command(stats_command)
    webhooks.add_command(simulate_command)
