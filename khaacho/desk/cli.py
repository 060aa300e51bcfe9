"""``flask orders status`` and ``flask orders export``: the desk's status change and CSV from a terminal."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import Flask
from flask.cli import with_appcontext

from khaacho.desk import export
from khaacho.desk.filters import BadFilter, day_range, parse_status
from khaacho.desk.status import DESK_STATUSES, NoSuchOrder, NotAllowed, change_status, notice_note
from khaacho.orders.cli import orders


@click.command("status")
@click.argument("order_id", type=click.IntRange(1, 9223372036854775807))
@click.argument("status", type=click.Choice(DESK_STATUSES))
@click.option("--note", default=None, help="Why (kept with the ops action).")
@with_appcontext
def status_command(order_id: int, status: str, note: str | None) -> None:
    """Move ORDER_ID to STATUS as the desk does: same transitions, one notice to the shop, an ops action."""
    try:
        moved = change_status(order_id, status, note, user_id=None)
    except NoSuchOrder:
        raise click.ClickException(f"no order #{order_id}") from None
    except NotAllowed as exc:
        raise click.ClickException(f"nothing changed: {exc}") from None
    click.echo(f"order #{moved.order_id}: {moved.old} -> {moved.new}; {notice_note(moved)}")


def _day(_ctx: click.Context, _param: click.Parameter, value: datetime | None):
    return value.date() if value else None


@click.command("export")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), callback=_day,
              help="First day (UTC), YYYY-MM-DD.")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), callback=_day,
              help="Last day (UTC, inclusive), YYYY-MM-DD.")
@click.option("--status", default="", help="Only orders in this status.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@with_appcontext
def export_command(start, end, status: str, out: str | None) -> None:
    """Write the orders CSV (one row per item) of the days from --from to --to, inclusive."""
    try:
        day_range(start, end)
        status = parse_status(status)
    except BadFilter as exc:
        raise click.BadParameter(str(exc)) from None
    if out is None:
        for chunk in export.stream(start, end, status):
            sys.stdout.write(chunk)
        return
    with open(out, "w", encoding="utf-8", newline="") as handle:
        for chunk in export.stream(start, end, status):
            handle.write(chunk)
    click.echo(f"wrote {out}", err=True)


def init_app(_app: Flask) -> None:
    """Add ``status`` and ``export`` to the ``flask orders`` group."""
    orders.add_command(status_command)
    orders.add_command(export_command)
