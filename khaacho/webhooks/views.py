"""Webhook endpoints: verify, parse, store, answer. The work is in meta, twilio and store."""

from __future__ import annotations

import functools
import hmac
import time

from flask import Response, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from khaacho import tombstones
from khaacho.events import NO_TIMESTAMP, Events
from khaacho.extensions import db
from khaacho.webhooks import audit, bp, meta, metrics, store, twilio

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
    response = jsonify(error=store.UNAVAILABLE)
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


def _raw_body(cache: bool = False) -> bytes:
    """The body as sent; a chunked one past MAX_CONTENT_LENGTH raises 413 rather than arriving cut short.

    With a Content-Length, Werkzeug refuses an oversized body itself. Without one it stops reading
    at the limit, and the cut body would only fail its signature (a misleading 403).
    """
    body = request.get_data(cache=cache)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    cut = request.content_length is None and limit is not None and len(body) >= limit
    if cut and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return body


@bp.post("/webhook")
def meta_webhook() -> tuple[Response | str, int] | Response:
    """Meta events the fast path declined: verify, store every message, update statuses, answer 200.

    Meta's usual delivery (signed, within the size limit, with messages or statuses) is answered
    by :class:`khaacho.webhooks.fastpath.FastPath` before Flask sees it; this view serves the
    rest: bad signatures, malformed JSON, empty or chunked bodies, and any error the fast path met.
    """
    body = _raw_body()
    problem = meta.signature_problem(
        body, request.headers.get(META_SIGNATURE_HEADER), current_app.config["WHATSAPP_APP_SECRETS"]
    )
    if problem:
        return _rejected(problem, 401 if problem == "missing signature" else 403)
    try:
        events = meta.parse(body)
    except meta.MalformedPayload:
        _record("whatsapp", Events(), None, "malformed JSON")
        return _error("malformed JSON", 400)
    return _record("whatsapp", events, Response("OK", 200, mimetype="text/plain"))


@bp.post("/twilio/webhook")
def twilio_webhook() -> tuple[Response | str, int] | Response:
    """Twilio messages and status callbacks: verify, store, then answer empty TwiML."""
    if request.content_length is None:
        _raw_body(cache=True)  # the form is then parsed from the cached, whole body
    form = request.form
    skipped = current_app.config["TWILIO_SKIP_VALIDATION"]
    if not skipped:
        problem = twilio.signature_problem(
            request.url, form, request.headers.get(TWILIO_SIGNATURE_HEADER),
            current_app.config["TWILIO_AUTH_TOKEN"], request.headers.get(TWILIO_SETTINGS_HEADER),
        )
        if problem:
            return _rejected(problem, 401 if problem == "missing signature" else 403)
    events = twilio.parse(form)
    if events.messages:
        try:
            with db.engine.connect() as conn:
                deleted = tombstones.buried(conn, [m.message_id for m in events.messages])
        except SQLAlchemyError:
            return _unavailable()
        # A replay of a message the cleanup deleted: as old as can be, so it is stored stale.
        events.messages[:] = [m._replace(timestamp=NO_TIMESTAMP) if m.message_id in deleted else m
                              for m in events.messages]
    return _record("twilio", events, Response(twilio.TWIML_EMPTY, 200, mimetype="text/xml"),
                   "signature not checked (TWILIO_SKIP_VALIDATION)" if skipped else None)


def _record(source: str, events: Events, ok: Response | None,
            reason: str | None = None) -> Response | tuple[Response, int] | None:
    """Store the request and answer ``ok``, or 503; with ``ok`` None only audit it, come what may."""
    found = events.audit_reason() if reason is None or events.dropped else None
    if found is not None:
        reason = f"{reason}; {found}"[:255] if reason else found
    try:
        store.store(current_app._get_current_object(), source, events, client_ip=request.remote_addr,
                    endpoint=request.path, started=g.webhook_started, request_id=g.get("request_id"),
                    reason=reason)
    except store.StorageUnavailable:
        return _unavailable() if ok is not None else None
    return ok
