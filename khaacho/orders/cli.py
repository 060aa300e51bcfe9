"""``flask catalog import`` and ``flask orders parse``."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from khaacho.orders.catalog import active_catalog, import_catalog
from khaacho.orders.catalog_csv import CatalogError
from khaacho.orders.matcher import read_order


@click.group(cls=AppGroup)
def catalog() -> None:
    """Manage the product catalog."""


@catalog.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_command(path: str) -> None:
    """Upsert products from a CSV with columns sku,name,aliases,unit,price (aliases split by |)."""
    try:
        created, updated = import_catalog(path)
    except CatalogError as exc:
        raise click.ClickException(f"nothing imported:\n{exc}") from None
    click.echo(f"imported {created + updated} products ({created} new, {updated} updated)")


@click.group(cls=AppGroup)
def orders() -> None:
    """Order parsing tools."""


@orders.command("parse")
@click.argument("text", required=False)
def parse_command(text: str | None) -> None:
    """Print the items read from TEXT as JSON; without TEXT, one message per stdin line.

    On standard input a literal backslash-n inside a line is a line break of that message.
    """
    products = active_catalog()
    messages = [text] if text is not None else (line.rstrip("\n").replace("\\n", "\n") for line in sys.stdin)
    for message in messages:
        items = [line.to_json() for line in read_order(message, products)]
        click.echo(json.dumps(items, ensure_ascii=False))


def init_app(app: Flask) -> None:
    """Register the ``catalog`` and ``orders`` CLI groups."""
    app.cli.add_command(catalog)
    app.cli.add_command(orders)
