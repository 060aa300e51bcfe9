"""Webhook endpoints: verify, parse, record, answer. The work is in meta, twilio and intake."""

from __future__ import annotations

import functools
import hmac
import time

from flask import Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from khaacho.webhooks import audit, bp, intake, meta, metrics, twilio
from khaacho.webhooks.meta import Events

META_SIGNATURE_HEADER = "X-Hub-Signature-256"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def _source() -> str:
    return "twilio" if request.path.endswith("/twilio/webhook") else "whatsapp"


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status


def _rejected(reason: str, status: int) -> tuple[Response, int]:
    """Audit a rejected request (folded per IP) and answer ``status``, or 429 past the IP's allowance."""
    if not audit.reject(_source(), request.path, request.remote_addr, reason):
        response, code = _error("too many invalid requests", 429)
        response.headers["Retry-After"] = "60"
        return response, code
    return _error(reason, status)


def _unavailable() -> tuple[Response, int]:
    response = jsonify(error=intake.UNAVAILABLE)
    response.headers["Retry-After"] = "5"
    return response, 503


@bp.before_request
def _start_clock() -> None:
    g.webhook_started = time.perf_counter()


@bp.after_request
def _flush_rejections(response: Response) -> Response:
    if metrics.flush_due():
        response.call_on_close(functools.partial(metrics.flush_in, current_app._get_current_object()))
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
    return _rejected("body too large", 413)


@bp.get("/webhook")
def meta_handshake() -> Response | tuple[Response, int]:
    """Meta's subscription handshake: echo ``hub.challenge`` when the verify token matches."""
    expected = current_app.config.get("WHATSAPP_VERIFY_TOKEN") or ""
    given = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge")
    if (expected and challenge is not None and request.args.get("hub.mode") == "subscribe"
            and hmac.compare_digest(given.encode(), expected.encode())):
        return Response(challenge, 200, mimetype="text/plain")
    return _rejected("bad verify token", 403)


@bp.post("/webhook")
def meta_webhook() -> tuple[Response | str, int] | Response:
    """Meta events: verify the raw body, store every message, update statuses, then answer 200."""
    body = request.get_data(cache=False)
    problem = meta.signature_problem(
        body, request.headers.get(META_SIGNATURE_HEADER), current_app.config["WHATSAPP_APP_SECRETS"]
    )
    if problem:
        return _rejected(problem, 401 if problem == "missing signature" else 403)
    try:
        events = meta.parse(body)
    except meta.MalformedPayload:
        intake.insert_audit_only("whatsapp", request.path, request.remote_addr, "malformed JSON")
        return _error("malformed JSON", 400)
    return _record("whatsapp", events, Response("OK", 200, mimetype="text/plain"))


@bp.post("/twilio/webhook")
def twilio_webhook() -> tuple[Response | str, int] | Response:
    """Twilio messages and status callbacks: verify, store, then answer empty TwiML."""
    form = request.form
    skipped = current_app.config["TWILIO_SKIP_VALIDATION"]
    if not skipped:
        problem = twilio.signature_problem(
            request.url, form, request.headers.get(TWILIO_SIGNATURE_HEADER),
            current_app.config["TWILIO_AUTH_TOKEN"], request.headers.get(TWILIO_SETTINGS_HEADER),
        )
        if problem:
            return _rejected(problem, 401 if problem == "missing signature" else 403)
    return _record("twilio", twilio.parse(form), Response(twilio.TWIML_EMPTY, 200, mimetype="text/xml"),
                   "signature not checked (TWILIO_SKIP_VALIDATION)" if skipped else None)


def _record(source: str, events: Events, ok: Response,
            reason: str | None = None) -> Response | tuple[Response, int]:
    if reason is None and not (events.messages or events.statuses):
        reason = "no messages or statuses"
    try:
        intake.record(source, events, request.remote_addr, request.path, g.webhook_started, reason)
    except intake.StorageUnavailable:
        return _unavailable()
    return ok
