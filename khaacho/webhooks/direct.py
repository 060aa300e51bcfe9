"""Meta's usual delivery, answered from the WSGI environ without Flask's request machinery.

Every WhatsApp message crosses ``POST /api/v1/whatsapp-hardened/webhook``. For it, Flask's
request and app contexts, URL matching, hooks and response object cost about as much CPU as the
work itself (``bench/RESULTS.md``). So the route is direct (see :mod:`khaacho.machines`):
:func:`meta_delivery` serves the usual case, a signed body within the size limit that parses to
messages or statuses, with the same checks, storage, audit row, metrics, request id and headers
as the Flask view. Everything else (no or bad signature, malformed JSON, too large, nothing to
store, a body without ``Content-Length``) it declines: the body goes back into ``wsgi.input``
and the view in :mod:`khaacho.webhooks.views` answers, audit and all.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import time
from collections.abc import Callable, Iterable

from flask import Flask, g
from werkzeug.exceptions import InternalServerError
from werkzeug.wsgi import ClosingIterator

from khaacho import logs, security
from khaacho.machines import WSGIApp
from khaacho.webhooks import intake, meta, metrics

log = logging.getLogger(__name__)
SOURCE = "whatsapp"
OK = b"OK"
UNAVAILABLE = (json.dumps({"error": intake.UNAVAILABLE}, separators=(",", ":")) + "\n").encode()


def meta_delivery(app: Flask, environ: dict) -> WSGIApp | None:
    """Store and acknowledge a verified Meta delivery, or None to leave the request to the view."""
    started = time.perf_counter()
    config = app.config
    body = _body(environ, config["MAX_CONTENT_LENGTH"])
    if body is None:
        return None
    if meta.signature_problem(body, environ.get("HTTP_X_HUB_SIGNATURE_256"), config["WHATSAPP_APP_SECRETS"]):
        return None
    try:
        events = meta.parse(body)
    except meta.MalformedPayload:
        return None
    if not (events.messages or events.statuses):
        return None

    path = environ["PATH_INFO"]
    request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID"))
    token = logs.request_id_var.set(request_id)
    try:
        with app.app_context():
            g.request_id = request_id
            intake.record(SOURCE, events, environ.get("REMOTE_ADDR"), path, started)
        status, content, content_type, extra = "200 OK", OK, "text/plain; charset=utf-8", ()
    except intake.StorageUnavailable:
        status, content, content_type, extra = (
            "503 SERVICE UNAVAILABLE", UNAVAILABLE, "application/json", (("Retry-After", "5"),))
    except Exception:
        if config["PROPAGATE_EXCEPTIONS"] or app.testing or app.debug:
            raise
        log.exception("Exception on %s [POST]", path)  # as Flask logs it, and the same 500
        return InternalServerError()
    finally:
        logs.request_id_var.reset(token)

    flush = metrics.flush_due()
    headers = [("Content-Type", content_type), ("Content-Length", str(len(content))), *extra,
               ("X-Request-ID", request_id), *security.default_headers(config)]
    return _answer(status, headers, content, functools.partial(metrics.flush_in, app) if flush else None)


def _body(environ: dict, limit: int | None) -> bytes | None:
    """The whole body, put back for the view to read again; None when the view should deal with it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None  # chunked or unknown: the view's stream handling applies
    if length < 0 or (limit is not None and length > limit):
        return None  # the view answers 413 and audits it
    stream = environ["wsgi.input"]
    chunks, left = [], length
    while left > 0:
        try:
            chunk = stream.read(left)
        except OSError:  # the client went away or stalled: as a short body
            break
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    return body if left == 0 else None  # a short body: the view answers the disconnect


def _answer(status: str, headers: list[tuple[str, str]], content: bytes,
            on_close: Callable[[], None] | None) -> WSGIApp:
    def answer(_environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response(status, headers)
        return ClosingIterator([content], on_close) if on_close else [content]

    return answer
