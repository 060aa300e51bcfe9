"""Webhook intake: Meta and Twilio endpoints under ``/api/v1/whatsapp-hardened``."""

from __future__ import annotations

from flask import Blueprint, Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

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


def init_app(app: Flask) -> None:
    """Register the webhook endpoints and put the fast path in front of Flask.

    No CSRF (providers sign their requests) and no Flask-Limiter route limits: senders are
    limited by the relay (:mod:`khaacho.processing.relay`), forgers per IP by :mod:`.audit`.
    Meta's usual deliveries never reach Flask (:mod:`khaacho.webhooks.fastpath`).
    """
    from khaacho.extensions import csrf, limiter
    from khaacho.webhooks import metrics, store, views  # noqa: F401  (views attaches the routes to ``bp``)
    from khaacho.webhooks.fastpath import FastPath

    csrf.exempt(bp)
    limiter.exempt(bp)
    app.register_blueprint(bp)
    app.session_interface = CookieSessionsButWebhooks()
    with app.app_context():
        store.bind_engine(app)
    app.wsgi_app = FastPath(app.wsgi_app, app)  # type: ignore[method-assign]
    metrics.flush_at_exit(app)
