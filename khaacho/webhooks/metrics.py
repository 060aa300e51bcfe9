"""What a web worker still holds between requests: counts of rejections past an IP's allowance.

Request timings are not kept here: the audit row each accepted request writes anyway carries
its ack time (``response_ms``), so ``/metrics`` and the performance stats see a request the
moment it is stored, whichever worker took it, however quiet the traffic (the worker's minute
task rolls the rows up, see :mod:`khaacho.ops.rollup`). Only the rejections answered ``429``
without touching the database (see :mod:`khaacho.webhooks.audit`) are counted in memory; they
are written every :data:`FLUSH_SECONDS` from the request thread once the response has been sent
(``call_on_close``), and at exit. A failed write drops them with a warning.
"""

from __future__ import annotations

import atexit
import logging
import time

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db
from khaacho.webhooks import audit

log = logging.getLogger(__name__)
FLUSH_SECONDS = 5.0
_last_flush = time.monotonic()
_exit_app: Flask | None = None


def flush_due() -> bool:
    """True when rejections are held in memory and the last write is older than FLUSH_SECONDS."""
    return audit.has_suppressed() and time.monotonic() - _last_flush >= FLUSH_SECONDS


def flush() -> None:
    """Add the held-back rejection counts to their audit rows."""
    global _last_flush
    _last_flush = time.monotonic()
    try:
        with db.engine.begin() as conn:
            audit.flush_suppressed(conn)
    except SQLAlchemyError as exc:
        log.warning("dropped held-back rejection counts: %s", type(exc).__name__)


def flush_in(app: Flask) -> None:
    """:func:`flush` inside an app context (for ``call_on_close``, after the request context ended)."""
    with app.app_context():
        flush()


def flush_at_exit(app: Flask) -> None:
    """Write what is left when the worker process exits (gunicorn restarts, deploys)."""
    global _exit_app
    if _exit_app is None:
        atexit.register(_flush_on_exit)
    _exit_app = app


def _flush_on_exit() -> None:
    if _exit_app is not None and audit.has_suppressed():
        flush_in(_exit_app)
