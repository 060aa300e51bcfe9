"""``GET /api/v1/whatsapp-hardened/stats``: the stats as JSON, for an admin session or a bearer token."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from khaacho import stats
from khaacho.auth.decorators import stats_auth_required

bp = Blueprint("stats_api", __name__)


def _bad_request(message: str) -> ResponseReturnValue:
    return jsonify(success=False, error=message), 400


@bp.get("/api/v1/whatsapp-hardened/stats")
@stats_auth_required
def stats_view() -> ResponseReturnValue:
    """Processing, security, performance and rate-limit stats for ``source`` over ``hours``."""
    source = request.args.get("source", "all")
    if source not in stats.SOURCES:
        return _bad_request(f"source must be one of {', '.join(stats.SOURCES)}")
    raw_hours = request.args.get("hours", "24")
    if not re.fullmatch(r"[0-9]{1,4}", raw_hours) or not 1 <= int(raw_hours) <= stats.MAX_HOURS:
        return _bad_request(f"hours must be a whole number from 1 to {stats.MAX_HOURS}")
    response = jsonify(success=True, data=stats.all_stats(source, int(raw_hours)))
    response.headers["Cache-Control"] = "no-store"
    return response
