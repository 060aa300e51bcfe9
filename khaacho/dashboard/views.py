"""``/dashboard``: the page, its self-refreshing fragments, message detail and replay."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload

from khaacho import stats
from khaacho.auth.decorators import admin_required
from khaacho.dashboard import charts
from khaacho.dashboard.messages import BULK_REPLAY_MAX, MessageFilters, count, page_of, replayable_ids
from khaacho.extensions import db
from khaacho.models import MESSAGE_STATUSES, REPLAYABLE_STATUSES, OpsAction, Order, WebhookMessage
from khaacho.ops import views as ops_views
from khaacho.processing.replay import Replayed, replay_refs

bp = Blueprint("dashboard", __name__)
# Ids are BIGINT: a larger number in the URL is no message (404), not a database error.
MESSAGE_ID = "<int(max=9223372036854775807):message_id>"
ENDPOINT_LABELS = {
    "/api/v1/whatsapp-hardened/webhook": "Meta webhook",
    "/api/v1/whatsapp-hardened/twilio/webhook": "Twilio webhook",
}


def _filters() -> MessageFilters:
    return MessageFilters.from_args(request.args)


def _stats_source(filters: MessageFilters) -> str:
    return filters.source or "all"


def _health(filters: MessageFilters) -> dict:
    return {"tiles": stats.health(_stats_source(filters))}


def _processing(filters: MessageFilters) -> dict:
    since = stats.window_start(filters.hours)
    source = _stats_source(filters)
    rows, hourly = stats.processing_report(since, source)
    chart = charts.stacked_columns(charts.hour_axis(filters.hours), [
        ("completed or in progress", "ok",
         {r["hour"]: r["message_count"] - r["problem_count"] for r in hourly}),
        ("failed or dead", "bad", {r["hour"]: r["problem_count"] for r in hourly}),
    ], unit=" messages")
    return {"rows": rows, "chart": chart, "queue": stats.queue(),
            "format_age": stats.format_age}


def _security(filters: MessageFilters) -> dict:
    since = stats.window_start(filters.hours)
    source = _stats_source(filters)
    rows = stats.security(since, source)
    chart = charts.stacked_columns(charts.hour_axis(filters.hours), [
        ("valid", "ok", {r["hour"]: r["valid_signatures"] for r in rows}),
        ("invalid", "bad", {r["hour"]: r["invalid_signatures"] for r in rows}),
    ], unit=" requests")
    return {"rows": rows, "chart": chart, "sources": stats.suspicious_sources(since, source),
            "senders": stats.rate_limits(since),
            "totals": {key: sum(r[key] for r in rows)
                       for key in ("total_requests", "invalid_signatures", "suspicious_requests")}}


def _performance(filters: MessageFilters) -> dict:
    since = stats.window_start(filters.hours)
    source = _stats_source(filters)
    rows, summary = stats.performance_report(since, source)
    paths = sorted({r["endpoint_path"] for r in rows})
    chart = charts.lines(charts.hour_axis(filters.hours), [
        (ENDPOINT_LABELS.get(path, path), f"series-{i % 4}",
         {r["hour"]: r["p95_response_time_ms"] for r in rows if r["endpoint_path"] == path})
        for i, path in enumerate(paths)
    ], unit=" ms p95")
    labelled = [{**row, "label": ENDPOINT_LABELS.get(row["endpoint_path"], row["endpoint_path"])}
                for row in summary]
    return {"summary": labelled, "chart": chart}


def _messages(filters: MessageFilters) -> dict:
    return {"page": page_of(filters)}


def _operations(_filters: MessageFilters) -> dict:
    return ops_views.operations()


PARTIALS: dict[str, Callable[[MessageFilters], dict]] = {
    "health": _health, "operations": _operations, "processing": _processing, "security": _security,
    "performance": _performance, "messages": _messages,
}


def _context(filters: MessageFilters) -> dict:
    return {"filters": filters, "now": datetime.now(UTC)}


@bp.get("/")
def home() -> ResponseReturnValue:
    """The site root leads to the dashboard."""
    return redirect(url_for("dashboard.index"))


@bp.get("/dashboard")
@login_required
def index() -> ResponseReturnValue:
    """The whole dashboard; each section then refreshes itself from its partial."""
    filters = _filters()
    sections = {name: build(filters) for name, build in PARTIALS.items()}
    return render_template("dashboard.html", sections=sections, statuses=MESSAGE_STATUSES,
                           **_context(filters))


@bp.get("/dashboard/partials/<name>")
@login_required
def partial(name: str) -> ResponseReturnValue:
    """One section alone, as an HTMX swap target (a fragment, not a page).

    The page's poller comes along out of band, so the next refresh keeps these filters and page.
    """
    build = PARTIALS.get(name)
    if build is None:
        abort(404)
    filters = _filters()
    context = _context(filters)
    return (render_template(f"_{name}.html", **build(filters), **context)
            + render_template("_live.html", oob=True, **context))


@bp.get("/dashboard/live")
@login_required
def live() -> ResponseReturnValue:
    """Every live section in one response, each swapped into the page out of band (one poll, not six)."""
    filters = _filters()
    context = _context(filters)
    return "".join(render_template(f"_{name}.html", oob=True, **build(filters), **context)
                   for name, build in PARTIALS.items())


@bp.get(f"/dashboard/messages/{MESSAGE_ID}")
@login_required
def message_detail(message_id: int) -> ResponseReturnValue:
    """Everything about one message: payload, attempts, errors, its order and its reply."""
    message = db.session.get(
        WebhookMessage, message_id,
        options=[selectinload(WebhookMessage.order).selectinload(Order.items),
                 selectinload(WebhookMessage.reply)],
    )
    if message is None:
        abort(404)
    return render_template("message.html", message=message, replayable=REPLAYABLE_STATUSES,
                           now=datetime.now(UTC))


def _replay(ids: list[int], filters: MessageFilters | None = None) -> None:
    """Replay the messages, record who did it (``ops_actions``) and tell the operator what happened."""
    outcomes: list[Replayed] = replay_refs([str(mid) for mid in ids])
    detail = {"queued": [r.message_id for r in outcomes if r.queued],
              "left_alone": [r.message_id or r.ref for r in outcomes if not r.queued]}
    if filters is not None:
        detail["filters"] = filters.args()
    db.session.add(OpsAction(user_id=current_user.id, action="replay", detail=json.dumps(detail)))
    db.session.commit()
    done = [r for r in outcomes if r.queued]
    left = [r for r in outcomes if not r.queued]
    if done:
        note = f" ({done[0].reason})" if done[0].reason else ""
        flash(f"Re-queued {len(done)} message{'s' if len(done) != 1 else ''}{note}.", "ok")
    for result in left[:10]:
        flash(f"Message #{result.message_id or result.ref} left alone: {result.reason}.", "warn")
    if len(left) > 10:
        flash(f"…and {len(left) - 10} more left alone.", "warn")


@bp.post(f"/dashboard/messages/{MESSAGE_ID}/replay")
@admin_required
def replay_one(message_id: int) -> ResponseReturnValue:
    """Re-queue one dead, failed, rate-limited or stale message."""
    if db.session.get(WebhookMessage, message_id) is None:
        abort(404)
    _replay([message_id])
    return redirect(url_for("dashboard.message_detail", message_id=message_id))


@bp.route("/dashboard/replay", methods=["GET", "POST"])
@admin_required
def bulk_replay() -> ResponseReturnValue:
    """Show how many messages the filters select, then re-queue them when confirmed."""
    filters = MessageFilters.from_args(request.values)
    if not filters.bulk_replayable:
        flash(f"Bulk replay needs a status filter of {', '.join(REPLAYABLE_STATUSES)}.", "warn")
        return redirect(url_for("dashboard.index", **filters.args()))
    if request.method == "GET":
        return render_template("replay_confirm.html", filters=filters, total=count(filters),
                               cap=BULK_REPLAY_MAX, now=datetime.now(UTC))
    ids = replayable_ids(filters)
    if not ids:
        flash("No messages match these filters any more; nothing was replayed.", "info")
    else:
        _replay(ids, filters)
    return redirect(url_for("dashboard.index", **filters.args(page=1)))
