"""The dashboard's pause switches (admins act, everyone sees) and its operations section."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from khaacho import stats
from khaacho.auth.decorators import admin_required
from khaacho.ops import alerts, control, heartbeat, rollup, switches

bp = Blueprint("ops", __name__)


def operations() -> dict:
    """What the operations section shows: switches, alerts, consumers, task times, the queue."""
    _counts, oldest = rollup.live_queue()
    return {"switches": switches.states(), "active_alerts": alerts.active(),
            "alert_history": alerts.history(), "alert_titles": alerts.TITLES,
            "consumers": heartbeat.consumers(), "timings": heartbeat.timing_percentiles(),
            "oldest_queued": oldest, "format_age": stats.format_age}


@bp.post("/dashboard/switches/<name>")
@admin_required
def toggle(name: str) -> ResponseReturnValue:
    """Pause or resume a switch (form field ``action``: pause or resume)."""
    action = request.form.get("action")
    if name not in switches.NAMES or action not in ("pause", "resume"):
        abort(400)
    (control.pause if action == "pause" else control.resume)(name, current_user.email)
    if request.headers.get("HX-Request"):
        return render_template("_switches.html", switches=switches.states())
    flash(f"{name.capitalize()} {'paused' if action == 'pause' else 'resumed'}.", "ok")
    return redirect(url_for("dashboard.index"))
