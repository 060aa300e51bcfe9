"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from khaacho.extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """Liveness: the process answers; no I/O."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """Readiness: 200 when the database answers; Redis is reported but not required."""
    checks = {"database": _database_state(), "redis": _redis_state()}
    ready = checks["database"] == "ok"
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _database_state() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # any driver error means "not ready"
        db.session.rollback()
        current_app.logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        return "unavailable"
    finally:
        db.session.remove()


def _redis_state() -> str:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return "not configured"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except redis.RedisError:
        return "unavailable"
