"""``flask demo init``: the demo catalog and a first admin, for ``make run``."""

from __future__ import annotations

import secrets
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from khaacho.auth.cli import create_user
from khaacho.extensions import db
from khaacho.models import User
from khaacho.orders.catalog import import_catalog

DEMO_CATALOG = Path(__file__).parent / "data" / "demo_catalog.csv"
DEMO_ADMIN = "admin@khaacho.local"


@click.group(cls=AppGroup)
def demo() -> None:
    """Demo data for a local instance."""


@demo.command("init")
def init_command() -> None:
    """Load the demo catalog and create an admin the first time (its password is printed once)."""
    created, updated = import_catalog(DEMO_CATALOG)
    click.echo(f"demo catalog: {created} products added, {updated} updated")
    if db.session.scalar(select(func.count()).select_from(User)):
        click.echo("users exist already; no admin created")
        return
    password = secrets.token_urlsafe(12)
    create_user(DEMO_ADMIN, password, "admin")
    db.session.commit()
    click.echo(f"admin login: {DEMO_ADMIN}  password: {password}  (shown only this once)")


def init_app(app: Flask) -> None:
    """Register the ``demo`` CLI group."""
    app.cli.add_command(demo)
