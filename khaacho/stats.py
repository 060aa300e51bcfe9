"""Webhook statistics: the one module the dashboard, the JSON stats API and the CLI all read.

Every query is a range scan on an indexed ``created_at``/``bucket_start``/``window_start``
column, so its cost follows the window asked for, not the size of the table.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from khaacho.extensions import db, limiter
from khaacho.histograms import LATENCY_BUCKETS_MS, histogram_percentile
from khaacho.models import (
    WebhookMessage,
    WebhookPerformanceMetric,
    WebhookRateLimit,
    WebhookSignatureLog,
)
from khaacho.ops import rollup
from khaacho.processing.senders import LIMITER_DOWN_REASON

SOURCES = ("all", "whatsapp", "twilio")
MAX_HOURS = 720
HEALTH_WINDOW = timedelta(minutes=15)
# An IP sending this many invalid requests within one hour is probing, not misconfigured.
SUSPICIOUS_IP_THRESHOLD = 5
ACK_ALERT_MS = 1500.0
DUPLICATE_ALERT_RATE = 0.10
ERROR_ALERT_RATE = 0.05
QUEUE_WARN_SECONDS = 60
QUEUE_ALERT_SECONDS = 300
TOP_LIMIT = 10


def window_start(hours: int, now: datetime | None = None) -> datetime:
    """The start of a window covering the last ``hours`` hours."""
    return (now or datetime.now(UTC)) - timedelta(hours=hours)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def hour_of(column: ColumnElement) -> ColumnElement:
    """SQL expression truncating a timestamp column to its UTC hour, on PostgreSQL and SQLite."""
    if _dialect() == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:00:00", column)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour_iso(value: datetime | str) -> str:
    return _as_utc(value).replace(minute=0, second=0, microsecond=0).isoformat()


def _round(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _source_filter(column, source: str) -> list:
    return [] if source == "all" else [column == source]


def processing_report(since: datetime, source: str = "all") -> tuple[list[dict], list[dict]]:
    """From one scan: messages by source and status (with timings and counts), and per hour."""
    m = WebhookMessage
    hour = hour_of(m.created_at)
    rows = db.session.execute(
        select(
            hour, m.webhook_source, m.status, func.count(), func.sum(m.response_time_ms),
            func.count(m.response_time_ms), func.max(m.response_time_ms),
            func.sum(m.duplicate_count), func.sum(m.error_count),
        )
        .where(m.created_at >= since, *_source_filter(m.webhook_source, source))
        .group_by(hour, m.webhook_source, m.status)
    ).all()
    groups: dict[tuple[str, str], list] = {}
    hours: dict[str, list[int]] = {}
    for h, src, status, count, ms_sum, ms_count, peak, dups, errors in rows:
        group = groups.setdefault((src, status), [0, 0.0, 0, None, 0, 0])
        group[0] += count
        group[1] += float(ms_sum or 0.0)
        group[2] += ms_count
        if peak is not None:
            group[3] = peak if group[3] is None else max(group[3], peak)
        group[4] += int(dups or 0)
        group[5] += int(errors or 0)
        totals = hours.setdefault(_hour_iso(h), [0, 0])
        totals[0] += count
        totals[1] += count if status in ("failed", "dead") else 0
    by_status = [
        {
            "webhook_source": src, "status": status, "message_count": count,
            "avg_response_time_ms": _round(ms_sum / ms_count) if ms_count else None,
            "max_response_time_ms": _round(peak), "total_duplicates": dups, "total_errors": errors,
        }
        for (src, status), (count, ms_sum, ms_count, peak, dups, errors)
        in sorted(groups.items(), key=lambda item: (item[0][0], -item[1][0], item[0][1]))
    ]
    per_hour = [{"hour": h, "message_count": n, "problem_count": p} for h, (n, p) in sorted(hours.items())]
    return by_status, per_hour


def processing(since: datetime, source: str = "all") -> list[dict]:
    """Messages received since ``since`` by source and status, with timings and counts."""
    return processing_report(since, source)[0]


def security(since: datetime, source: str = "all") -> list[dict]:
    """Webhook requests per hour: valid and invalid signatures, and suspicious ones.

    A request is suspicious when it is invalid and its IP sent at least
    ``SUSPICIOUS_IP_THRESHOLD`` invalid requests in that hour. Folded rows count
    ``request_count`` times.
    """
    log = WebhookSignatureLog
    hour = hour_of(log.created_at)
    # The relay's fail-open rows count messages, not requests.
    where = [log.created_at >= since, *_source_filter(log.webhook_source, source),
             log.reason.is_distinct_from(LIMITER_DOWN_REASON)]
    invalid_count = case((log.is_valid.is_(False), log.request_count), else_=0)
    rows = db.session.execute(
        select(hour, func.sum(log.request_count), func.sum(invalid_count))
        .where(*where).group_by(hour).order_by(hour)
    ).all()
    per_ip = (
        select(hour.label("hour"), func.sum(log.request_count).label("n"))
        .where(*where, log.is_valid.is_(False))
        .group_by(hour, log.client_ip)
        .having(func.sum(log.request_count) >= SUSPICIOUS_IP_THRESHOLD)
        .subquery()
    )
    suspicious = {
        _hour_iso(h): int(n)
        for h, n in db.session.execute(select(per_ip.c.hour, func.sum(per_ip.c.n)).group_by(per_ip.c.hour))
    }
    result = []
    for h, total, invalid in rows:
        key = _hour_iso(h)
        total, invalid = int(total or 0), int(invalid or 0)
        result.append({
            "hour": key, "total_requests": total, "valid_signatures": total - invalid,
            "invalid_signatures": invalid, "suspicious_requests": suspicious.get(key, 0),
        })
    return result


def suspicious_sources(since: datetime, source: str = "all") -> list[dict]:
    """The client IPs that sent the most invalid webhook requests since ``since``."""
    log = WebhookSignatureLog
    total = func.sum(log.request_count)
    rows = db.session.execute(
        select(log.client_ip, total, func.max(log.last_seen_at), func.max(log.reason))
        .where(log.created_at >= since, log.is_valid.is_(False), *_source_filter(log.webhook_source, source))
        .group_by(log.client_ip).order_by(total.desc()).limit(TOP_LIMIT)
    )
    return [
        {"client_ip": ip or "unknown", "invalid_requests": int(n), "last_seen_at": _as_utc(seen).isoformat(),
         "reason": reason}
        for ip, n, seen, reason in rows
    ]


def _performance_groups(since: datetime, source: str, per_hour_and_endpoint: bool) -> list[dict]:
    """Timings since ``since``, per hour and endpoint or in one group: the rolled-up minutes summed in
    SQL (histograms element by element) plus the requests not rolled up yet, read from the audit log.
    """
    pm = WebhookPerformanceMetric
    keys = (hour_of(pm.bucket_start), pm.endpoint_path) if per_hour_and_endpoint else ()
    buckets = [func.coalesce(func.sum(pm.histogram[i].as_integer()), 0)
               for i in range(len(LATENCY_BUCKETS_MS) + 1)]
    rows = db.session.execute(
        select(*keys, func.sum(pm.request_count), func.sum(pm.success_count), func.sum(pm.total_ms),
               func.max(pm.max_ms), *buckets)
        .where(pm.bucket_start >= since, *_source_filter(pm.webhook_source, source))
        .group_by(*keys)
    )
    width = len(keys)
    groups: dict[tuple, dict] = {}
    for row in rows:
        if row[width] is None:
            continue  # no rolled-up rows at all: the one aggregate row is empty
        key = (_hour_iso(row[0]), row[1]) if width else ()
        groups[key] = {"count": int(row[width]), "ok": int(row[width + 1] or 0),
                       "total_ms": float(row[width + 2] or 0.0), "max_ms": float(row[width + 3] or 0.0),
                       "histogram": [int(n) for n in row[width + 4:]]}
    for (hour, endpoint, _source), tail in rollup.tail_timings(since, source).items():
        key = (hour.isoformat(), endpoint) if width else ()
        group = groups.setdefault(key, {"count": 0, "ok": 0, "total_ms": 0.0, "max_ms": 0.0,
                                        "histogram": [0] * (len(LATENCY_BUCKETS_MS) + 1)})
        for name in ("count", "ok", "total_ms"):
            group[name] += tail[name]
        group["max_ms"] = max(group["max_ms"], tail["max_ms"])
        group["histogram"] = [a + b for a, b in zip(group["histogram"], tail["histogram"], strict=True)]
    return [{"keys": key, **group} for key, group in sorted(groups.items())]


def _timings(group: dict) -> dict:
    count = group["count"]
    timed = sum(group["histogram"])  # rejected requests are counted but carry no time
    return {
        "request_count": count,
        "avg_response_time_ms": _round(group["total_ms"] / timed) if timed else None,
        "p95_response_time_ms": histogram_percentile(group["histogram"], 0.95, group["max_ms"]),
        "p99_response_time_ms": histogram_percentile(group["histogram"], 0.99, group["max_ms"]),
        "success_rate": _round(100.0 * group["ok"] / count) if count else None,
    }


def performance_report(since: datetime, source: str = "all") -> tuple[list[dict], list[dict]]:
    """From one read: figures per hour and endpoint, and per endpoint over the whole window."""
    groups = _performance_groups(since, source, per_hour_and_endpoint=True)
    hourly = [
        {"endpoint_path": group["keys"][1], "hour": _hour_iso(group["keys"][0]), **_timings(group)}
        for group in groups
    ]
    totals: dict[str, dict] = {}
    for group in groups:
        total = totals.setdefault(group["keys"][1], {
            "count": 0, "ok": 0, "total_ms": 0.0, "max_ms": 0.0,
            "histogram": [0] * (len(LATENCY_BUCKETS_MS) + 1)})
        for key in ("count", "ok", "total_ms"):
            total[key] += group[key]
        total["max_ms"] = max(total["max_ms"], group["max_ms"])
        total["histogram"] = [a + b for a, b in zip(total["histogram"], group["histogram"], strict=True)]
    summary = [
        {"endpoint_path": path, **_timings(total), "max_response_time_ms": _round(total["max_ms"])}
        for path, total in sorted(totals.items())
    ]
    return hourly, summary


def performance(since: datetime, source: str = "all") -> list[dict]:
    """Requests per hour and endpoint: count, average, p95, p99 and success rate (percent)."""
    return performance_report(since, source)[0]


def ack_percentile(since: datetime, source: str = "all", q: float = 0.95) -> tuple[int, float | None]:
    """Requests since ``since`` over all endpoints, and their q-quantile acknowledgement time."""
    groups = _performance_groups(since, source, per_hour_and_endpoint=False)
    if not groups or not groups[0]["count"]:
        return 0, None
    return groups[0]["count"], histogram_percentile(groups[0]["histogram"], q, groups[0]["max_ms"])


def rate_limits(since: datetime) -> list[dict]:
    """The senders with the most blocked, then most, requests in windows overlapping ``since``."""
    rl = WebhookRateLimit
    window = timedelta(minutes=current_app.config["WEBHOOK_RATE_LIMIT_WINDOW"])
    requests, blocked = func.sum(rl.request_count), func.sum(rl.blocked_count)
    rows = db.session.execute(
        select(rl.phone_number, requests, blocked, func.max(rl.updated_at))
        .where(rl.window_start > since - window)
        .group_by(rl.phone_number).order_by(blocked.desc(), requests.desc(), rl.phone_number)
        .limit(TOP_LIMIT)
    )
    return [
        {"phone_number": phone, "request_count": int(n), "blocked_count": int(b),
         "last_seen_at": _as_utc(seen).isoformat()}
        for phone, n, b, seen in rows
    ]


def queue(now: datetime | None = None) -> dict:
    """Messages waiting for a worker: queued, processing, failed (awaiting retry), and the oldest."""
    m = WebhookMessage
    counts = dict(db.session.execute(
        select(m.status, func.count())
        .where(m.status.in_(("queued", "processing", "failed"))).group_by(m.status)
    ).all())
    oldest = db.session.scalar(select(func.min(m.created_at)).where(m.status == "queued"))
    age = ((now or datetime.now(UTC)) - _as_utc(oldest)).total_seconds() if oldest else None
    return {
        "queued": counts.get("queued", 0), "processing": counts.get("processing", 0),
        "failed": counts.get("failed", 0),
        "oldest_queued_age_seconds": None if age is None else max(age, 0.0),
    }


def all_stats(source: str = "all", hours: int = 24) -> dict:
    """The four sections of the stats API, for the last ``hours`` hours."""
    since = window_start(hours)
    return {
        "processing": processing(since, source),
        "security": security(since, source),
        "performance": performance(since, source),
        "rate_limits": rate_limits(since),
    }


def limiter_state() -> str:
    """``redis``, ``memory`` (per process, embedded mode) or ``failing open`` (store unreachable)."""
    if not current_app.config.get("REDIS_URL"):
        return "memory"
    try:
        return "redis" if limiter.storage.check() else "failing open"
    except Exception:  # any storage error means requests are let through unchecked
        return "failing open"


def _tile(key: str, label: str, value: str, state: str, detail: str) -> dict:
    return {"key": key, "label": label, "value": value, "state": state, "detail": detail}


def _rate_state(rate: float | None, alert: float) -> str:
    if rate is None:
        return "idle"
    return "alert" if rate > alert else "warn" if rate > alert / 2 else "ok"


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def format_age(seconds: float | None) -> str:
    """A short human age: ``45 s``, ``12 min``, ``3 h``."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def health(source: str = "all", now: datetime | None = None) -> list[dict]:
    """The health tiles operators alert on, over the last 15 minutes, each with a state."""
    now = now or datetime.now(UTC)
    since = now - HEALTH_WINDOW
    rows = processing(since, source)
    received = sum(r["message_count"] for r in rows)
    by_status: dict[str, int] = defaultdict(int)
    for row in rows:
        by_status[row["status"]] += row["message_count"]
    duplicates = sum(r["total_duplicates"] for r in rows)
    dup_rate = duplicates / (received + duplicates) if received else None
    err_rate = (by_status["failed"] + by_status["dead"]) / received if received else None
    requests, ack_p95 = ack_percentile(since, source)
    invalid = sum(r["invalid_signatures"] for r in security(since, source))
    blocked = by_status["rate_limited"]
    waiting = queue(now)
    age = waiting["oldest_queued_age_seconds"]
    limiter_mode = limiter_state()
    # A relay that could not reach the limiter counted the messages it let through in the audit log.
    failed_open = int(db.session.scalar(
        select(func.coalesce(func.sum(WebhookSignatureLog.request_count), 0))
        .where(WebhookSignatureLog.created_at >= since, WebhookSignatureLog.reason == LIMITER_DOWN_REASON)
    ))
    if failed_open:
        limiter_mode = "failing open"
    tiles = [
        _tile("ack", "Ack time p95", "—" if ack_p95 is None else f"{ack_p95:.0f} ms",
              "idle" if ack_p95 is None else "alert" if ack_p95 > ACK_ALERT_MS
              else "warn" if ack_p95 > ACK_ALERT_MS * 2 / 3 else "ok",
              f"{requests} request{'' if requests == 1 else 's'}; alert above {ACK_ALERT_MS / 1000:.1f} s"),
        _tile("duplicates", "Duplicate rate", _percent(dup_rate), _rate_state(dup_rate, DUPLICATE_ALERT_RATE),
              f"{duplicates} redeliveries; alert above {DUPLICATE_ALERT_RATE:.0%}"),
        _tile("errors", "Error rate", _percent(err_rate), _rate_state(err_rate, ERROR_ALERT_RATE),
              f"{by_status['failed']} failed, {by_status['dead']} dead of {received}; "
              f"alert above {ERROR_ALERT_RATE:.0%}"),
        _tile("blocked", "Rate-limit blocks", str(blocked), "warn" if blocked else "ok",
              "messages held back from over-eager senders"),
        _tile("invalid", "Invalid signatures", str(invalid),
              "alert" if invalid >= 4 * SUSPICIOUS_IP_THRESHOLD else "warn" if invalid else "ok",
              "forged or misconfigured webhook requests"),
        _tile("queue", "Queue", f"{waiting['queued']} queued",
              "ok" if age is None or age <= QUEUE_WARN_SECONDS
              else "warn" if age <= QUEUE_ALERT_SECONDS else "alert",
              f"oldest {format_age(age)}; {waiting['processing']} processing, "
              f"{waiting['failed']} awaiting retry"),
        _tile("limiter", "Rate limiter", limiter_mode,
              "alert" if limiter_mode == "failing open" else "ok",
              f"{failed_open} messages let through unchecked" if failed_open
              else "Redis unreachable: senders are not limited" if limiter_mode == "failing open"
              else "shared across workers" if limiter_mode == "redis" else "in memory, per process"),
    ]
    return tiles
