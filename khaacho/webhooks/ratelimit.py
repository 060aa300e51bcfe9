"""Counting rejected webhook requests per IP on Flask-Limiter's storage, failing open.

Only :mod:`khaacho.webhooks.audit` counts here (forgeries per IP); a valid delivery never
touches Redis, and senders are limited by the relay (:mod:`khaacho.processing.senders`).
The manual checks bypass Flask-Limiter's ``swallow_errors`` and ``key_prefix``, so both are done
here: keys start with ``khaacho``, and a storage error lets the request through, logs a warning,
and keeps the limiter skipped for a few seconds so an unreachable Redis costs one timeout per
process per pause rather than one per request.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem

from khaacho.extensions import limiter

log = logging.getLogger(__name__)
PAUSE_AFTER_FAILURE_SECONDS = 5.0

_paused_until = 0.0


def _paused() -> bool:
    """True while the limiter is skipped after a storage failure."""
    return time.monotonic() < _paused_until


def add(item: RateLimitItem, *key: str) -> int | None:
    """Add a hit to ``key``'s fixed window; the count after, or None when the storage is down."""
    global _paused_until
    if _paused():
        return None
    try:
        return int(limiter.storage.incr(item.key_for("khaacho", *key), item.get_expiry()))
    except Exception as exc:  # any storage error (Redis down, timeout): fail open
        _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
        log.warning("rate limiter unavailable, failing open for %ss: %s: %s",
                    PAUSE_AFTER_FAILURE_SECONDS, type(exc).__name__, exc)
        return None
