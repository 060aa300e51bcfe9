"""Webhook intake: Meta and Twilio endpoints under ``/api/v1/whatsapp-hardened``."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/whatsapp-hardened")


def init_app(app: Flask) -> None:
    """Register the webhook endpoints, exempt from CSRF and from the limiter's per-route checks."""
    from khaacho.extensions import csrf, limiter
    from khaacho.webhooks import metrics, views  # noqa: F401  (views attaches the routes to ``bp``)

    csrf.exempt(bp)
    limiter.exempt(bp)
    app.register_blueprint(bp)
    metrics.flush_at_exit(app)
