"""Alerts: evaluated every minute by the worker, kept with their history, posted to ALERT_WEBHOOK_URL.

Each kind has at most one open episode (a partial unique index), so an alert is raised once
however long it lasts. It is posted when raised, or, if the same kind was posted less than
:data:`POST_INTERVAL` ago, once that interval has passed and it still fires; and once more when
it clears (if its raise was posted). A post is claimed
with a conditional UPDATE before it is sent, so two evaluators cannot both post it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from khaacho.extensions import db
from khaacho.models import Alert, MessageStatus, OutboundMessage, WebhookMessage, WebhookSignatureLog, utcnow
from khaacho.ops import rollup
from khaacho.ops.heartbeat import silent_consumers

log = logging.getLogger(__name__)
POST_INTERVAL = timedelta(minutes=15)
DEAD_WINDOW = timedelta(minutes=15)
QUEUE_STALLED_SECONDS = 300
INVALID_WINDOW, INVALID_THRESHOLD = timedelta(minutes=5), 50
REPLY_FAILURE_WINDOW, REPLY_FAILURE_THRESHOLD = timedelta(minutes=15), 10
TITLES = {
    "dead_messages": "Messages going dead",
    "queue_stalled": "Queue stalled",
    "invalid_signatures": "Invalid webhook signatures",
    "reply_failures": "Reply deliveries failing",
    "worker_silent": "Worker silent",
}
HISTORY_LIMIT = 20


@dataclass(frozen=True)
class Check:
    """One kind's state now: whether it fires, the figure it is about and a sentence saying so."""

    kind: str
    firing: bool
    value: float
    summary: str


def _dead(now: datetime) -> Check:
    n = db.session.scalar(select(func.count()).select_from(WebhookMessage).where(
        WebhookMessage.status == MessageStatus.DEAD, WebhookMessage.updated_at >= now - DEAD_WINDOW)) or 0
    return Check("dead_messages", n > 0, n,
                 f"{n} message{'s' if n != 1 else ''} went dead (retries exhausted) in the last 15 minutes")


def _queue(now: datetime) -> Check:
    counts, age = rollup.live_queue(now)
    age = age or 0.0
    return Check("queue_stalled", age > QUEUE_STALLED_SECONDS, round(age),
                 f"the oldest queued message waited {age / 60:.0f} min ({counts['queued']} queued)")


def _invalid(now: datetime) -> Check:
    log_ = WebhookSignatureLog
    n = int(db.session.scalar(select(func.coalesce(func.sum(log_.request_count), 0)).where(
        log_.is_valid.is_(False), log_.created_at >= now - INVALID_WINDOW)) or 0)
    return Check("invalid_signatures", n > INVALID_THRESHOLD, n,
                 f"{n} webhook requests with an invalid signature in the last 5 minutes")


def _reply_failures(now: datetime) -> Check:
    o = OutboundMessage
    since = now - REPLY_FAILURE_WINDOW
    # created_at bounds the scan through its index; a reply fails within hours of being made.
    n = db.session.scalar(select(func.count()).select_from(o).where(
        o.created_at >= now - timedelta(days=2), o.updated_at >= since,
        (o.status == "failed") | (o.delivery_status == "failed"))) or 0
    return Check("reply_failures", n > REPLY_FAILURE_THRESHOLD, n,
                 f"{n} reply deliveries failed in the last 15 minutes")


def _workers(now: datetime) -> Check:
    silent = silent_consumers(now)
    names = ", ".join(silent[:5]) + (" …" if len(silent) > 5 else "")
    seconds = current_app.config["WORKER_SILENT_SECONDS"]
    plural = "s" if len(silent) != 1 else ""
    return Check("worker_silent", bool(silent), len(silent),
                 f"{len(silent)} consumer{plural} silent for over {seconds} s: {names}")


def checks(now: datetime) -> list[Check]:
    """Every alert kind, evaluated now."""
    return [_dead(now), _queue(now), _invalid(now), _reply_failures(now), _workers(now)]


def _last_post(kind: str) -> datetime | None:
    return db.session.scalar(select(func.max(Alert.posted_at)).where(Alert.kind == kind))


def _claim_post(alert_id: int, column: str, now: datetime) -> bool:
    stmt = (update(Alert).where(Alert.id == alert_id, getattr(Alert, column).is_(None))
            .values({column: now}).execution_options(synchronize_session=False))
    claimed = db.session.execute(stmt).rowcount == 1
    db.session.commit()
    return claimed


def post(text: str) -> bool:
    """Post ``{"text": …}`` to ALERT_WEBHOOK_URL; False (logged) when it is unset or the post failed."""
    url = current_app.config["ALERT_WEBHOOK_URL"]
    if not url:
        return False
    try:
        response = requests.post(url, json={"text": text}, timeout=(3.05, 10))
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("alert not posted: %s", exc)
        return False
    return True


def evaluate(now: datetime | None = None) -> list[Check]:
    """Raise, update and clear the alerts from :func:`checks`, posting raises and clears; the checks."""
    now = now or utcnow()
    results = checks(now)
    to_post: list[tuple[int, str, str]] = []
    for check in results:
        current = db.session.scalar(select(Alert).where(Alert.kind == check.kind, Alert.cleared_at.is_(None)))
        if check.firing:
            if current is None:
                current = Alert(kind=check.kind, summary=check.summary, value=check.value, raised_at=now,
                                last_seen_at=now)
                db.session.add(current)
                log.error("alert raised: %s", check.summary, extra={"alert": check.kind})
            else:
                current.summary, current.value, current.last_seen_at = check.summary, check.value, now
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()  # another evaluator raised it a moment ago
                continue
            last = _last_post(check.kind)
            # Not posted yet (just raised, or held back by a post of this kind under 15 minutes ago).
            if current.posted_at is None and (last is None or now - _aware(last, now) >= POST_INTERVAL):
                to_post.append((current.id, "posted_at",
                                f":rotating_light: Khaacho alert: {TITLES[check.kind]}: {check.summary}"))
        elif current is not None:
            current.cleared_at = now
            db.session.commit()
            log.warning("alert cleared: %s", TITLES[check.kind], extra={"alert": check.kind})
            if current.posted_at is not None:
                to_post.append((current.id, "clear_posted_at",
                                f":white_check_mark: Khaacho resolved: {TITLES[check.kind]} "
                                f"(was: {current.summary})"))
    for alert_id, column, text in to_post:
        if _claim_post(alert_id, column, now) and not post(text):
            # Not delivered: free the claim so the next minute may try again.
            db.session.execute(update(Alert).where(Alert.id == alert_id).values({column: None}))
            db.session.commit()
    return results


def _aware(moment: datetime, like: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=like.tzinfo)


def active() -> list[Alert]:
    """The open alerts, oldest first."""
    return list(db.session.scalars(select(Alert).where(Alert.cleared_at.is_(None)).order_by(Alert.raised_at)))


def history(limit: int = HISTORY_LIMIT) -> list[Alert]:
    """The latest alerts, open or cleared, newest first."""
    newest = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    return list(db.session.scalars(newest))
