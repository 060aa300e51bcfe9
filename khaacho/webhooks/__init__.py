"""Webhook intake: Meta and Twilio endpoints under ``/api/v1/whatsapp-hardened``."""

from __future__ import annotations

from flask import Blueprint, Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/whatsapp-hardened")
_limiter_filter_registered = False  # the limiter is one per process: register its filter once


WEBHOOK_PATHS = frozenset({f"{bp.url_prefix}/webhook", f"{bp.url_prefix}/twilio/webhook"})


def _is_webhook() -> bool:
    return request.blueprint == bp.name


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


def init_app(app: Flask) -> None:
    """Register the webhook endpoints, exempt from CSRF and from the limiter's per-route checks.

    The per-sender and per-IP limits are applied by intake itself; the request filter lets
    Flask-Limiter skip its route-limit lookups for webhooks at once (cheaper than ``exempt``).
    """
    global _limiter_filter_registered
    from khaacho.extensions import csrf, limiter
    from khaacho.webhooks import metrics, views  # noqa: F401  (views attaches the routes to ``bp``)

    csrf.exempt(bp)
    if not _limiter_filter_registered:
        limiter.request_filter(_is_webhook)
        _limiter_filter_registered = True
    app.register_blueprint(bp)
    app.session_interface = CookieSessionsButWebhooks()
    metrics.flush_at_exit(app)
