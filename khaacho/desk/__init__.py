"""The order desk: orders, their conversations and status changes, what needs a person, shops, CSV."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the desk's pages and its ``flask orders status|export`` commands."""
    from khaacho.desk import cli, views

    app.register_blueprint(views.bp)
    cli.init_app(app)
