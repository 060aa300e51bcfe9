"""Webhook response times, aggregated in memory per endpoint and minute, flushed in batches.

Each worker process keeps its own rollups and writes them to ``webhook_performance_metrics``
every :data:`FLUSH_SECONDS` or :data:`FLUSH_COUNT` requests, from the request thread once the
response has been sent (``call_on_close``), so no background thread has to survive a fork and
no request waits for the write. Several rows per endpoint and minute are normal: the stats sum
them. What is pending when the process exits is written by an ``atexit`` hook. A failed flush
drops that batch with a warning: timings are not worth retrying.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db
from khaacho.models import WebhookPerformanceMetric, utcnow
from khaacho.stats import LATENCY_BUCKETS_MS, latency_bucket
from khaacho.webhooks import audit

log = logging.getLogger(__name__)
FLUSH_SECONDS = 5.0
FLUSH_COUNT = 5000
_table = WebhookPerformanceMetric.__table__

# (endpoint, source, minute epoch) -> [count, successes, total_ms, max_ms, histogram]
_rollups: dict[tuple[str, str, int], list] = {}
_pending = 0
_last_flush = time.monotonic()
_lock = threading.Lock()
_exit_app: Flask | None = None


def observe(endpoint: str, source: str, elapsed_ms: float, ok: bool) -> bool:
    """Add one request to its minute's rollup; True when a flush is due."""
    global _pending
    key = (endpoint, source, int(time.time()) // 60)
    with _lock:
        rollup = _rollups.get(key)
        if rollup is None:
            rollup = _rollups[key] = [0, 0, 0.0, 0.0, [0] * (len(LATENCY_BUCKETS_MS) + 1)]
        rollup[0] += 1
        rollup[1] += ok
        rollup[2] += elapsed_ms
        if elapsed_ms > rollup[3]:
            rollup[3] = elapsed_ms
        rollup[4][latency_bucket(elapsed_ms)] += 1
        _pending += 1
        return _pending >= FLUSH_COUNT or time.monotonic() - _last_flush >= FLUSH_SECONDS


def flush() -> int:
    """Write the rollups (and the audit counts held back from floods); the number of rows written."""
    global _pending, _last_flush
    with _lock:
        rollups = dict(_rollups)
        _rollups.clear()
        _pending = 0
        _last_flush = time.monotonic()
    now = utcnow()
    rows = [
        {"endpoint_path": endpoint[:255], "webhook_source": source,
         "bucket_start": datetime.fromtimestamp(minute * 60, UTC), "request_count": count,
         "success_count": ok, "total_ms": round(total, 3), "max_ms": round(peak, 3),
         "histogram": histogram, "created_at": now}
        for (endpoint, source, minute), (count, ok, total, peak, histogram) in rollups.items()
    ]
    try:
        with db.engine.begin() as conn:
            if rows:
                conn.execute(insert(_table), rows)
            audit.flush_suppressed(conn)
    except SQLAlchemyError as exc:
        log.warning("dropped %d webhook metric rows: %s", len(rows), type(exc).__name__)
        return 0
    return len(rows)


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
    if _pending and _exit_app is not None:
        flush_in(_exit_app)
