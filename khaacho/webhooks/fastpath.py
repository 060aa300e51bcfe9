"""Meta's usual delivery, answered as WSGI middleware before Flask builds a request.

Every WhatsApp message crosses ``POST /api/v1/whatsapp-hardened/webhook``. For it, Flask's
request and app contexts, URL matching, hooks and response object cost about as much CPU as the
work itself (``bench/RESULTS.md``). :class:`FastPath` wraps ``app.wsgi_app`` (Flask's documented
place for middleware; ``ProxyFix`` wraps it in turn, so the client address is already resolved)
and serves the usual case, a signed body within the size limit that parses to messages or
statuses, with the same checks, storage, audit row, metrics, request id and headers as the view.
Everything else it passes to Flask untouched, body put back: no or bad signature, malformed JSON,
too large, nothing to store, a body without ``Content-Length``, and any unexpected error (the
view then runs it again inside Flask, whose error handling, logging and signals apply; storage is
idempotent, and a failed statement stored nothing).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import time
from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.wsgi import ClosingIterator

from khaacho import logs, security
from khaacho.webhooks import META_PATH, meta, metrics, store

log = logging.getLogger(__name__)
SOURCE = "whatsapp"
OK = b"OK"
UNAVAILABLE = (json.dumps({"error": store.UNAVAILABLE}, separators=(",", ":")) + "\n").encode()
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class FastPath:
    """Answer Meta's usual delivery from the environ; pass every other request to ``wsgi_app``."""

    def __init__(self, wsgi_app: WSGIApp, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The fast answer when there is one, else Flask's."""
        if environ.get("PATH_INFO") == META_PATH and environ.get("REQUEST_METHOD") == "POST":
            answer = self._deliver(environ)
            if answer is not None:
                return answer(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _deliver(self, environ: dict) -> WSGIApp | None:
        """Store and acknowledge a verified delivery, or None to leave the request to the view."""
        started = time.perf_counter()
        app, config = self.app, self.app.config
        body = _body(environ, config["MAX_CONTENT_LENGTH"])
        if body is None:
            return None
        signature = environ.get("HTTP_X_HUB_SIGNATURE_256")
        if meta.signature_problem(body, signature, config["WHATSAPP_APP_SECRETS"]):
            return None
        try:
            events = meta.parse(body)
        except meta.MalformedPayload:
            return None
        if not (events.messages or events.statuses) or events.dropped:
            return None  # the view audits what was not stored, and why

        request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        token = logs.request_id_var.set(request_id)
        try:
            store.store(app, SOURCE, events, client_ip=environ.get("REMOTE_ADDR"), endpoint=META_PATH,
                        started=started, request_id=request_id)
            status, content, content_type, extra = "200 OK", OK, "text/plain; charset=utf-8", ()
        except store.StorageUnavailable:
            status, content, content_type, extra = (
                "503 SERVICE UNAVAILABLE", UNAVAILABLE, "application/json", (("Retry-After", "5"),))
        except Exception as exc:  # a bug: let the view meet it inside Flask's error handling
            log.warning("fast path declined after %s; the view answers", type(exc).__name__)
            return None
        finally:
            logs.request_id_var.reset(token)

        flush = metrics.flush_due()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(content))), *extra,
                   ("X-Request-ID", request_id), *security.default_headers(config), security.NO_STORE]
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
