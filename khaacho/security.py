"""Security headers on every response, and ``Cache-Control: no-store`` on people's pages."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, Response, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
NO_STORE = ("Cache-Control", "no-store")


def default_headers(config: Mapping) -> tuple[tuple[str, str], ...]:
    """The headers every response carries (HSTS too where cookies are HTTPS-only, i.e. production)."""
    return HEADERS + (HSTS,) if config.get("SESSION_COOKIE_SECURE") else HEADERS


def init_app(app: Flask) -> None:
    """Add CSP (self-served scripts only), frame-deny, nosniff and friends, unless a view set its own."""

    @app.after_request
    def _headers(response: Response) -> Response:
        defaults = default_headers(app.config)
        # One pass over the response's headers rather than a scan per default (this runs on
        # every webhook too).
        present = {key.lower() for key, _ in response.headers.items()}
        response.headers.extend([(k, v) for k, v in defaults if k.lower() not in present])
        return response

    @app.after_request
    def _no_store(response: Response) -> Response:
        # People's pages show orders, phone numbers and CSRF tokens: no browser or proxy keeps a copy.
        # Only static assets stay cacheable (the webhook fast path says no-store too).
        if request.endpoint != "static":
            response.headers.setdefault(*NO_STORE)
        return response
