"""Deployment-wide figures from shared tables, cheap to read at any table size, never stale.

Webhook requests: every request already writes its audit row (``webhook_signature_log``; an
accepted one with ``response_ms``, the time it took to store). Once a minute the worker folds
the rows older than :data:`ROLLUP_DELAY` into ``webhook_request_totals`` (counts since the
deployment began, per source, outcome and ack-time bucket) and into the per-minute
``webhook_performance_metrics`` rows the stats read, and moves a watermark; a reader adds the
rows past the watermark (a few minutes at most, found through the primary key). So every
request counts exactly once, whichever web worker took it, the moment its row is committed, and
no request writes anything more. The delay lets rejected rows finish folding (one row per IP
and minute) before they are counted.

Rows by status (messages, orders, replies) would cost a scan of the table per read, so the same
minute task counts them into ``metric_snapshots``; the queue itself is read live.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    Subquery,
    case,
    delete,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from khaacho.extensions import db
from khaacho.histograms import LATENCY_BUCKETS_MS
from khaacho.models import (
    MessageStatus,
    MetricSnapshot,
    Order,
    OutboundMessage,
    RequestTotal,
    WebhookMessage,
    WebhookPerformanceMetric,
    WebhookSignatureLog,
    dialect_insert,
    utcnow,
)

# Upper bounds (ms) of the ack-time buckets: fine from 5 to 50 ms, where the acknowledgement lives.
ACK_BUCKETS_MS: tuple[float, ...] = (5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 250, 500, 1000, 2500, 5000)
ROLLUP_DELAY = timedelta(seconds=90)
UNTIMED = -1
WATERMARK = ("rollup", "audit_last_id")
# What the minute task counts, by these columns; a reply's label is ``kind/status``.
SNAPSHOTS = {"messages": (WebhookMessage.status,), "orders": (Order.status,),
             "replies": (OutboundMessage.kind, OutboundMessage.status)}


def bucket_of(column: ColumnElement, bounds: tuple[float, ...] = ACK_BUCKETS_MS) -> ColumnElement:
    """SQL: the index of the bucket of ``column`` (ms) among upper ``bounds``, or -1 when it is null."""
    whens = [(column.is_(None), UNTIMED)] + [(column <= bound, i) for i, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds)).cast(Integer)


def period_of(column: ColumnElement, unit: str) -> ColumnElement:
    """SQL: ``column`` truncated to its UTC ``minute`` or ``hour``, on PostgreSQL and SQLite."""
    if db.engine.dialect.name == "postgresql":
        return func.date_trunc(unit, func.timezone("UTC", column))
    return func.strftime("%Y-%m-%d %H:%M:00" if unit == "minute" else "%Y-%m-%d %H:00:00", column)


def as_utc(value: datetime | str) -> datetime:
    """A timestamp read back from either backend, as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _mark() -> Subquery:
    """The watermark as a one-row table with its ``id`` (0 before the first roll-up).

    Joined to the audit log, it lets PostgreSQL walk the log's primary key from the mark. Not a
    scalar subquery: ids compared with the stored float cannot use the key, and an unknown bound
    is planned as a third of the log, so a scrape read a million rows in parallel workers.
    """
    return (select(func.coalesce(func.max(MetricSnapshot.value), 0).cast(BigInteger).label("id"))
            .where(MetricSnapshot.name == WATERMARK[0], MetricSnapshot.label == WATERMARK[1])
            .subquery("mark"))


def _watermark() -> int:
    return int(db.session.scalar(select(_mark().c.id)))


def _audit_groups(*where: ColumnElement) -> Select:
    """Audit rows as (source, outcome, bucket, requests, total ms), the shape of a request total."""
    log = WebhookSignatureLog
    bucket = bucket_of(log.response_ms)
    outcome = case((log.is_valid, "accepted"), else_="rejected")
    return (select(log.webhook_source, outcome, bucket, func.sum(log.request_count),
                   func.coalesce(func.sum(log.response_ms), 0.0))
            .where(*where).group_by(log.webhook_source, outcome, bucket))


def audit_timings(unit: str, after_id: int, upto_id: int | None = None, since: datetime | None = None,
                  source: str = "all") -> dict[tuple[datetime, str, str], dict]:
    """Audit rows past ``after_id`` as performance figures per (period start, endpoint, source).

    Each value has ``count``, ``ok`` (accepted), ``total_ms``, ``max_ms`` and a ``histogram``
    over :data:`LATENCY_BUCKETS_MS`, the shape of a ``webhook_performance_metrics`` row.
    """
    log = WebhookSignatureLog
    period, bucket = period_of(log.created_at, unit), bucket_of(log.response_ms, LATENCY_BUCKETS_MS)
    where = [log.id > after_id]
    where += [log.id <= upto_id] if upto_id is not None else []
    where += [log.created_at >= since] if since is not None else []
    where += [log.webhook_source == source] if source != "all" else []
    rows = db.session.execute(
        select(period, log.endpoint, log.webhook_source, bucket, func.sum(log.request_count),
               func.sum(case((log.is_valid, log.request_count), else_=0)),
               func.coalesce(func.sum(log.response_ms), 0.0), func.max(log.response_ms))
        .where(*where).group_by(period, log.endpoint, log.webhook_source, bucket)
    ).all()
    groups: dict[tuple[datetime, str, str], dict] = {}
    for start, endpoint, src, b, n, ok, total, peak in rows:
        group = groups.setdefault((as_utc(start), endpoint, src), {
            "count": 0, "ok": 0, "total_ms": 0.0, "max_ms": 0.0,
            "histogram": [0] * (len(LATENCY_BUCKETS_MS) + 1)})
        group["count"] += int(n)
        group["ok"] += int(ok or 0)
        group["total_ms"] += float(total)
        group["max_ms"] = max(group["max_ms"], float(peak or 0.0))
        if b != UNTIMED:
            group["histogram"][int(b)] += int(n)
    return groups


def tail_timings(since: datetime, source: str = "all") -> dict[tuple[datetime, str, str], dict]:
    """Per hour, endpoint and source: the requests since ``since`` not yet rolled up."""
    return audit_timings("hour", _watermark(), since=since, source=source)


def request_totals() -> dict[tuple[str, str, int], list]:
    """Every webhook request so far: (source, outcome, bucket) -> [requests, total ms].

    One statement reads the totals and the rows past the watermark, so a fold committing
    meanwhile can neither hide nor double a request (a counter must never step back).
    """
    rt = RequestTotal
    folded = select(rt.webhook_source, rt.outcome, rt.bucket, rt.request_count, rt.total_ms)
    tail = _audit_groups(WebhookSignatureLog.id > _mark().c.id)
    totals: dict[tuple[str, str, int], list] = defaultdict(lambda: [0, 0.0])
    for source, outcome, bucket, n, ms in db.session.execute(union_all(folded, tail)):
        total = totals[(source, outcome, int(bucket))]
        total[0] += int(n)
        total[1] += float(ms)
    return dict(totals)


def _move_watermark(current: int, new: int, now: datetime) -> bool:
    return db.session.execute(
        update(MetricSnapshot)
        .where(MetricSnapshot.name == WATERMARK[0], MetricSnapshot.label == WATERMARK[1],
               MetricSnapshot.value == current)
        .values(value=new, taken_at=now).execution_options(synchronize_session=False)
    ).rowcount == 1


def _fold_audit(now: datetime) -> int:
    """Add the audit rows older than the delay to the totals and move the watermark; rows folded."""
    log = WebhookSignatureLog
    mark = _watermark()
    if mark and (db.session.scalar(select(func.max(log.id))) or 0) < mark:
        # The cleanup emptied the table and SQLite hands out the same ids again: start over.
        if not _move_watermark(mark, 0, now):
            return 0
        mark = 0
    upto = db.session.scalar(
        select(func.max(log.id)).where(log.id > mark, log.created_at < now - ROLLUP_DELAY))
    if upto is None:
        return 0
    # Moving the watermark first, conditionally, means a second consumer folding at once changes nothing.
    if not _move_watermark(mark, upto, now):
        return 0
    groups = db.session.execute(_audit_groups(log.id > mark, log.id <= upto)).all()
    table = RequestTotal.__table__
    stmt = dialect_insert(db.engine.dialect.name, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["webhook_source", "outcome", "bucket"],
        set_={"request_count": table.c.request_count + stmt.excluded.request_count,
              "total_ms": table.c.total_ms + stmt.excluded.total_ms})
    db.session.execute(stmt, [{"webhook_source": s, "outcome": o, "bucket": int(b), "request_count": int(n),
                               "total_ms": float(ms)} for s, o, b, n, ms in groups])
    minutes = audit_timings("minute", mark, upto)
    if minutes:
        db.session.execute(insert(WebhookPerformanceMetric), [
            {"endpoint_path": endpoint, "webhook_source": src, "bucket_start": start,
             "request_count": g["count"], "success_count": g["ok"], "total_ms": round(g["total_ms"], 3),
             "max_ms": round(g["max_ms"], 3), "histogram": g["histogram"], "created_at": now}
            for (start, endpoint, src), g in minutes.items()])
    return len(groups)


def _take_snapshots(now: datetime) -> None:
    for name, columns in SNAPSHOTS.items():
        counts = db.session.execute(select(*columns, func.count()).group_by(*columns)).all()
        db.session.execute(delete(MetricSnapshot).where(MetricSnapshot.name == name))
        if counts:
            db.session.execute(insert(MetricSnapshot), [
                {"name": name, "label": "/".join(str(key) for key in keys), "value": n, "taken_at": now}
                for *keys, n in counts])


def roll_up(now: datetime | None = None) -> None:
    """The minute task's figures: fold the audit log into the totals and retake the counts (committed)."""
    now = now or utcnow()
    stmt = dialect_insert(db.engine.dialect.name, MetricSnapshot.__table__).values(
        name=WATERMARK[0], label=WATERMARK[1], value=0, taken_at=now)
    db.session.execute(stmt.on_conflict_do_nothing(index_elements=["name", "label"]))
    _fold_audit(now)
    _take_snapshots(now)
    db.session.commit()


def snapshots() -> tuple[dict[str, dict[str, float]], datetime | None]:
    """The counts of the last minute task by name and status, and when they were taken."""
    result: dict[str, dict[str, float]] = {name: {} for name in SNAPSHOTS}
    taken = None
    for name, label, value, at in db.session.execute(
            select(MetricSnapshot.name, MetricSnapshot.label, MetricSnapshot.value, MetricSnapshot.taken_at)
            .where(MetricSnapshot.name.in_(tuple(SNAPSHOTS)))):
        result[name][label] = value
        at = as_utc(at)
        taken = at if taken is None or at > taken else taken
    return result, taken


def live_queue(now: datetime | None = None) -> tuple[dict[str, int], float | None]:
    """Messages waiting (queued, processing, failed) counted now, and the oldest queued one's age."""
    m = WebhookMessage
    waiting = (MessageStatus.QUEUED, MessageStatus.PROCESSING, MessageStatus.FAILED)
    counts = dict(db.session.execute(
        select(m.status, func.count()).where(m.status.in_(waiting)).group_by(m.status)).all())
    oldest = db.session.scalar(select(func.min(m.created_at)).where(m.status == MessageStatus.QUEUED))
    age = None
    if oldest is not None:
        oldest = as_utc(oldest)
        age = max(((now or utcnow()) - oldest).total_seconds(), 0.0)
    return {status: int(counts.get(status, 0)) for status in waiting}, age
