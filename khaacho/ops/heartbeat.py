"""Consumer heartbeats and task timings.

Each ``huey_consumer`` process keeps one row in ``worker_heartbeats``, touched every
``WORKER_HEARTBEAT_SECONDS`` by one thread. ``@huey.on_startup`` runs in every worker thread
(``huey/consumer.py``: ``Worker.initialize``), so the thread is started once per process behind
a lock. Huey's signals time each task's run; ``process_message`` reports its queue wait (from when its
message became due: queued by the relay, the sweep or a replay, or its retry time, until the
task claimed it). Both are kept in per-minute histograms in memory and written with each beat.
A consumer killed outright simply stops beating; after ``WORKER_SILENT_SECONDS`` it shows dead.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_EXECUTING
from sqlalchemy import delete, insert, select, update

from khaacho.extensions import db, huey
from khaacho.histograms import histogram_percentile
from khaacho.models import TaskTiming, WorkerHeartbeat, dialect_insert, utcnow
from khaacho.queue import bound_app

log = logging.getLogger(__name__)
# Upper bounds (ms) of the task-time buckets: a task runs in ms to seconds, may wait minutes.
TASK_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000)
FORGET_AFTER = timedelta(days=1)
TIMING_WINDOW = timedelta(minutes=15)

_lock = threading.Lock()
_stopping = threading.Event()
_started_pid: int | None = None
_consumer_id = ""
_tasks_done = 0
_running: dict[str, float] = {}
# (kind, minute epoch) -> [count, total_ms, max_ms, histogram]
_timings: dict[tuple[str, int], list] = {}


def consumer_id() -> str:
    """This process's heartbeat key: host, pid and start time."""
    return _consumer_id


def _observe(kind: str, ms: float) -> None:
    key = (kind, int(time.time()) // 60)
    with _lock:
        entry = _timings.get(key)
        if entry is None:
            entry = _timings[key] = [0, 0.0, 0.0, [0] * (len(TASK_BUCKETS_MS) + 1)]
        entry[0] += 1
        entry[1] += ms
        entry[2] = max(entry[2], ms)
        entry[3][bisect.bisect_left(TASK_BUCKETS_MS, ms)] += 1


def observe_wait(due: datetime) -> None:
    """Count a queue wait: from when a message became due until its task claimed it."""
    due = due if due.tzinfo else due.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    _observe("wait", max((utcnow() - due).total_seconds() * 1000.0, 0.0))


@huey.signal(SIGNAL_EXECUTING)
def _task_started(signal: str, task) -> None:
    _running[task.id] = time.perf_counter()


@huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR)
def _task_finished(signal: str, task, *_exc) -> None:
    global _tasks_done
    started = _running.pop(task.id, None)
    if started is not None:
        _observe("run", (time.perf_counter() - started) * 1000.0)
    with _lock:
        _tasks_done += 1


def beat(now: datetime | None = None) -> None:
    """Touch this consumer's row and write the task timings gathered since the last beat (committed)."""
    now = now or utcnow()
    with _lock:
        timings, done = dict(_timings), _tasks_done
        _timings.clear()
    table = WorkerHeartbeat.__table__
    stmt = dialect_insert(db.engine.dialect.name, table).values(
        consumer_id=_consumer_id, hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now,
        last_seen_at=now, tasks_done=done)
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["consumer_id"], set_={"last_seen_at": now, "tasks_done": done}))
    if timings:
        db.session.execute(insert(TaskTiming), [
            {"consumer_id": _consumer_id, "kind": kind,
             "bucket_start": datetime.fromtimestamp(minute * 60, UTC), "count": count,
             "total_ms": round(total, 3), "max_ms": round(peak, 3), "histogram": histogram}
            for (kind, minute), (count, total, peak, histogram) in timings.items()])
    db.session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < now - FORGET_AFTER))
    db.session.execute(delete(TaskTiming).where(TaskTiming.bucket_start < now - FORGET_AFTER))
    db.session.commit()


def _beat_forever(app: Flask, every: float) -> None:
    while not _stopping.is_set():
        try:
            with app.app_context():
                beat()
                db.session.remove()
        except Exception:  # the next beat tries again; a dead database shows as silence
            log.exception("heartbeat not recorded")
        _stopping.wait(every)


@huey.on_startup()
def start_heartbeat() -> None:
    """Start this consumer process's heartbeat thread (once, whichever worker thread starts first)."""
    global _started_pid, _consumer_id
    with _lock:
        if _started_pid == os.getpid():
            return
        _started_pid = os.getpid()
        _consumer_id = f"{socket.gethostname()[:100]}:{os.getpid()}:{int(time.time())}"
    app = bound_app()
    every = float(app.config["WORKER_HEARTBEAT_SECONDS"])
    threading.Thread(target=_beat_forever, args=(app, every), name="heartbeat", daemon=True).start()
    log.info("consumer %s reporting every %.0f s", _consumer_id, every)


@huey.on_shutdown()
def stop_heartbeat() -> None:
    """Mark this consumer stopped on a clean shutdown, so it shows stopped rather than dead."""
    if not _consumer_id:
        return
    _stopping.set()
    with bound_app().app_context():
        db.session.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.consumer_id == _consumer_id)
                           .values(stopped_at=utcnow()))
        db.session.commit()
        db.session.remove()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def consumers(now: datetime | None = None) -> list[dict]:
    """Consumers seen in the last day: id, state (alive, dead, stopped), last seen age, tasks done."""
    now = now or utcnow()
    silent_after = current_app.config["WORKER_SILENT_SECONDS"]
    rows = db.session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.started_at.desc()))
    result = []
    for row in rows:
        age = (now - _aware(row.last_seen_at)).total_seconds()
        state = "stopped" if row.stopped_at else "dead" if age > silent_after else "alive"
        result.append({"consumer_id": row.consumer_id, "hostname": row.hostname, "pid": row.pid,
                       "state": state, "last_seen_age_seconds": max(age, 0.0), "tasks_done": row.tasks_done,
                       "started_at": _aware(row.started_at)})
    return result


def silent_consumers(now: datetime | None = None) -> list[str]:
    """Consumers that stopped beating without a clean shutdown (dead)."""
    return [c["consumer_id"] for c in consumers(now) if c["state"] == "dead"]


def timing_percentiles(now: datetime | None = None) -> dict[str, dict]:
    """Queue wait and run time over the last 15 minutes: count, p50 and p95 (ms) per kind."""
    now = now or utcnow()
    width = len(TASK_BUCKETS_MS) + 1
    sums = {kind: {"count": 0, "max_ms": 0.0, "histogram": [0] * width} for kind in ("wait", "run")}
    for kind, count, peak, histogram in db.session.execute(
            select(TaskTiming.kind, TaskTiming.count, TaskTiming.max_ms, TaskTiming.histogram)
            .where(TaskTiming.bucket_start >= now - TIMING_WINDOW)):
        entry = sums[kind]
        entry["count"] += count
        entry["max_ms"] = max(entry["max_ms"], peak)
        entry["histogram"] = [a + b for a, b in zip(entry["histogram"], histogram, strict=True)]
    return {kind: {"count": entry["count"],
                   "p50": histogram_percentile(entry["histogram"], 0.5, entry["max_ms"], TASK_BUCKETS_MS),
                   "p95": histogram_percentile(entry["histogram"], 0.95, entry["max_ms"], TASK_BUCKETS_MS)}
            for kind, entry in sums.items()}
