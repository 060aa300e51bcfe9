"""Access rules: pages want a login, actions want an admin, the stats API also takes a token."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import abort, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import ApiToken, User

# Recording every use would turn each API read into a write; once a minute is enough to audit.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def admin_required(view: Callable) -> Callable:
    """Login required, and the user must be an admin (viewers get 403)."""

    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs) -> ResponseReturnValue:
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def unauthorized() -> ResponseReturnValue:
    """Flask-Login's answer to anonymous requests: HTMX is sent to the login page, others redirected."""
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


def _json_error(message: str, status: int, **headers: str) -> ResponseReturnValue:
    return jsonify(success=False, error=message), status, headers


def _token_user() -> User | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    api_token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token.strip())))
    if api_token is None or not api_token.user.is_active:
        return None
    now = datetime.now(UTC)
    last = api_token.last_used_at
    if last is None or now - (last if last.tzinfo else last.replace(tzinfo=UTC)) > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
        db.session.commit()
    return api_token.user


def stats_auth_required(view: Callable) -> Callable:
    """An admin session or ``Authorization: Bearer <token>``; 401 JSON when neither, 403 for viewers."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs) -> ResponseReturnValue:
        user = current_user if current_user.is_authenticated else _token_user()
        if user is None:
            return _json_error("authentication required", 401, **{"WWW-Authenticate": "Bearer"})
        if not user.is_admin:
            return _json_error("admin role required", 403)
        return view(*args, **kwargs)

    return wrapped
