"""``flask demo init``: the demo catalog and a first admin, for ``make run``."""

from __future__ import annotations

import json
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


@demo.command("provider")
@click.option("--port", default=8001, show_default=True, help="Loopback port to listen on.")
def provider_command(port: int) -> None:
    """A loopback stand-in for the Cloud API and Twilio that accepts replies and prints them.

    ``make run`` points WHATSAPP_API_URL and TWILIO_API_URL here (unless they are set), so
    the demo's replies are "delivered" without leaving the machine.
    """
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, _provider_app, threaded=True)


def _provider_app(environ, start_response):
    """Answer the two send endpoints the way the providers do; 404 for anything else."""
    from werkzeug.wrappers import Request, Response

    request = Request(environ)
    reply_id = secrets.token_hex(8)
    if request.method == "POST" and request.path.endswith("/messages"):
        body = request.get_json(silent=True) or {}
        recipient = body.get("to") or body.get("recipient")
        text = (body.get("text") or {}).get("body", "")
        payload, status = {"messages": [{"id": f"wamid.DEMO{reply_id}"}]}, 200
    elif request.method == "POST" and request.path.endswith("/Messages.json"):
        recipient, text = request.form.get("To"), request.form.get("Body", "")
        payload, status = {"sid": f"SM{reply_id}{reply_id}", "status": "queued"}, 201
    else:
        return Response("not found", 404)(environ, start_response)
    click.echo(f"--- reply to {recipient}:\n{text}\n")
    return Response(json.dumps(payload), status, mimetype="application/json")(environ, start_response)
