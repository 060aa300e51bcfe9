"""The ``flask webhooks`` command group, below every package: its commands live beside what they manage."""

from __future__ import annotations

import click


@click.group()
def webhooks() -> None:
    """Operate on received webhook messages."""
