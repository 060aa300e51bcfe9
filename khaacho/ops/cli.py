"""``flask webhooks pause|resume processing|replies``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from khaacho.commands import webhooks
from khaacho.ops import control, switches

SWITCH = click.Choice(switches.NAMES)


@click.command("pause")
@click.argument("name", type=SWITCH)
@with_appcontext
def pause_command(name: str) -> None:
    """Pause processing (webhooks stay queued) or replies (replies are held), for every process."""
    changed = control.pause(name, "cli")
    click.echo(f"{name} paused" if changed else f"{name} was already paused")


@click.command("resume")
@click.argument("name", type=SWITCH)
@with_appcontext
def resume_command(name: str) -> None:
    """Resume processing or replies; what was held back is queued once."""
    changed = control.resume(name, "cli")
    held = "queued messages" if name == switches.PROCESSING else "held replies"
    click.echo(f"{name} resumed; {held} queued" if changed else f"{name} was not paused")


def init_app(app: Flask) -> None:
    """Add ``pause`` and ``resume`` to the ``flask webhooks`` group."""
    webhooks.add_command(pause_command)
    webhooks.add_command(resume_command)
