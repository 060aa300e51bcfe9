"""The ops dashboard, the JSON stats API and the ``flask webhooks stats|simulate`` commands."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the dashboard and stats API blueprints and the ops commands."""
    from khaacho.dashboard import api, cli, views

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    cli.init_app(app)
