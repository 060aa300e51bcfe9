"""The webhook audit trail (``webhook_signature_log``), bounded against floods of forgeries.

Decision: a valid request gets its own row, written in the same transaction as its messages
(see :mod:`khaacho.webhooks.store`). A rejected request (bad or missing signature, bad verify
token, oversized body) is folded: all rejections from one IP for one source, endpoint and reason
within one UTC minute share a single row whose ``request_count`` grows, so a flood adds at most
one row per IP per minute. On top of that each IP gets :data:`INVALID_PER_IP` rejections per
minute through the shared rate-limit storage; past it the request is answered ``429`` without
touching the database and only counted in memory, and those counts are added to the folded row
when the worker next flushes its metrics. A forger therefore costs us an HMAC and a Redis
increment, never a database write per request, and valid traffic keeps its connections.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta

from limits import RateLimitItemPerMinute
from sqlalchemy import ColumnElement, Insert, bindparam, insert, literal_column, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from khaacho.extensions import db
from khaacho.models import WebhookSignatureLog, utcnow
from khaacho.webhooks import ratelimit

log = logging.getLogger(__name__)
INVALID_PER_IP = RateLimitItemPerMinute(60)
table = WebhookSignatureLog.__table__
_AUDIT_BOUND = ("webhook_source", "endpoint", "reason", "client_ip", "response_ms")
# (source, endpoint, ip, reason, minute) -> rejected requests not yet written
_suppressed: Counter[tuple[str, str, str | None, str, datetime]] = Counter()
_lock = threading.Lock()


def valid_insert(where: ColumnElement[bool] | None = None) -> Insert:
    """The audit row of one accepted request: binds ``audit_*`` from :func:`valid_params` and ``now``.

    Written as ``INSERT … SELECT`` so a caller can give it a ``where``: the intake statement
    hangs its wake-up notify on the audit row that way (:mod:`khaacho.webhooks.store`).
    """
    now = bindparam("now", type_=table.c.created_at.type)
    values = {**{c: bindparam(f"audit_{c}", type_=table.c[c].type) for c in _AUDIT_BOUND},
              "is_valid": true(), "request_count": literal_column("1"),
              "last_seen_at": now, "created_at": now}
    row = select(*values.values())
    return insert(table).from_select(list(values), row if where is None else row.where(where))


def valid_params(source: str, endpoint: str, client_ip: str | None, reason: str | None,
                 response_ms: float | None = None) -> dict:
    """What :func:`valid_insert` binds for one accepted request, but ``now``.

    ``response_ms`` is how long the request took until its store statement was sent (the only
    time known inside that one statement, so the write itself is not in it): the request counts and
    ack-time histogram of ``/metrics`` and the performance stats are computed from it.
    """
    return {"audit_webhook_source": source, "audit_endpoint": endpoint[:255], "audit_reason": reason,
            "audit_client_ip": (client_ip or "")[:64] or None,
            "audit_response_ms": None if response_ms is None else round(response_ms, 3)}


def reject(source: str, endpoint: str, client_ip: str | None, reason: str) -> bool:
    """Audit one rejected request; False when this IP is over its allowance (answer 429)."""
    ip = (client_ip or "")[:64] or None
    now = utcnow()
    minute = now.replace(second=0, microsecond=0)
    count = ratelimit.add(INVALID_PER_IP, "webhook-invalid", ip or "-")
    if count is not None and count > INVALID_PER_IP.amount:
        with _lock:
            _suppressed[(source, endpoint[:255], ip, reason, minute)] += 1
        return False
    try:
        with db.engine.begin() as conn:
            _fold(conn, source, endpoint[:255], ip, reason, minute, 1, now)
    except SQLAlchemyError as exc:
        # The answer to a forged request does not depend on the database.
        log.warning("could not audit a rejected webhook: %s", type(exc).__name__)
    return True


def _fold(conn: Connection, source: str, endpoint: str, ip: str | None, reason: str,
          minute: datetime, count: int, now: datetime) -> None:
    t = table.c
    end = minute + timedelta(minutes=1)
    folded = conn.execute(
        update(table)
        .where(t.client_ip == ip, t.is_valid.is_(False), t.webhook_source == source,
               t.endpoint == endpoint, t.reason == reason,
               t.created_at >= minute, t.created_at < end)
        .values(request_count=t.request_count + count, last_seen_at=now)
    ).rowcount
    if not folded:
        conn.execute(insert(table).values(
            webhook_source=source, endpoint=endpoint, is_valid=False, reason=reason, client_ip=ip,
            request_count=count, last_seen_at=now, created_at=now if now < end else minute))


def has_suppressed() -> bool:
    """True while over-allowance rejections are counted in memory only."""
    return bool(_suppressed)


def flush_suppressed(conn: Connection) -> None:
    """Add the in-memory counts of over-allowance rejections to their folded rows."""
    with _lock:
        pending = dict(_suppressed)
        _suppressed.clear()
    now = utcnow()
    for (source, endpoint, ip, reason, minute), count in pending.items():
        _fold(conn, source, endpoint, ip, reason, minute, count, now)
