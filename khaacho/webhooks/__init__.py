"""Webhook intake: Meta and Twilio endpoints under ``/api/v1/whatsapp-hardened``."""

from __future__ import annotations

from flask import Blueprint, Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from khaacho.machines import KhaachoFlask

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/whatsapp-hardened")


META_PATH = f"{bp.url_prefix}/webhook"
WEBHOOK_PATHS = frozenset({META_PATH, f"{bp.url_prefix}/twilio/webhook"})


class CookieSessionsButWebhooks(SecureCookieSessionInterface):
    """Signed cookie sessions for people; none for the providers' webhook calls.

    Providers send no cookies and nothing on the webhook path reads or writes a session, so it
    gets Flask's null session instead of a signer built per request (and no ``Vary: Cookie``).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """No session (Flask uses its null one) on the webhook paths; the signed cookie elsewhere.

        Matched by path because Flask opens the session before it matches the URL; the stats API
        shares the prefix and needs the admin's session.
        """
        if request.path in WEBHOOK_PATHS:
            return None
        return super().open_session(app, request)


def init_app(app: KhaachoFlask) -> None:
    """Register the webhook endpoints as machine-facing: no CSRF, cookie or route-limit hooks.

    The per-sender and per-IP limits are applied by intake itself (see :mod:`khaacho.machines`).
    Meta's deliveries are direct: :mod:`khaacho.webhooks.direct` answers the usual ones.
    """
    from khaacho.extensions import csrf
    from khaacho.webhooks import direct, metrics, views  # noqa: F401  (views attaches the routes to ``bp``)

    csrf.exempt(bp)
    app.machine_blueprints = app.machine_blueprints | {bp.name}
    app.register_blueprint(bp)
    app.add_direct_route("POST", META_PATH, direct.meta_delivery)
    app.session_interface = CookieSessionsButWebhooks()
    metrics.flush_at_exit(app)
