"""Operating the service: ``/metrics``, pause switches, alerts and consumer heartbeats."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register ``/metrics``, the switch actions and ``flask webhooks pause|resume``."""
    from khaacho.ops import cli, exposition, views

    app.register_blueprint(exposition.bp)
    app.register_blueprint(views.bp)
    cli.init_app(app)
