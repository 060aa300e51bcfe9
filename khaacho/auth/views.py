"""``/login`` and ``/logout``: a CSRF-protected form, failed attempts throttled (see :mod:`.throttle`)."""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from khaacho.auth import sessions, throttle
from khaacho.auth.cli import find_user
from khaacho.auth.decorators import unauthorized
from khaacho.extensions import db, login_manager

bp = Blueprint("auth", __name__)

BAD_CREDENTIALS = "Invalid email or password."
# A path on this site: printable ASCII without backslashes, not protocol-relative.
SAFE_NEXT = re.compile(r"/(?!/)[\x21-\x5b\x5d-\x7e]*")
THROTTLED = "Too many failed sign-in attempts. Wait {wait} and try again."
# Control characters (NUL above all: PostgreSQL refuses it in text) are never part of an address.
PRINTABLE = Regexp(r"^[^\x00-\x1f\x7f]*$", message="Enter a valid email address.")


class LoginForm(FlaskForm):
    """Email and password; the hidden ``csrf_token`` comes from FlaskForm."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=255), PRINTABLE])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("no user has this password")


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so ``?next=`` cannot send a user elsewhere (or split the header) after login."""
    if target and SAFE_NEXT.fullmatch(target):
        return target
    return url_for("dashboard.index")


def _wait_text(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"


def _throttled(seconds: int) -> ResponseReturnValue:
    message = THROTTLED.format(wait=_wait_text(seconds))
    return render_template("login.html", form=LoginForm(), error=message), 429, {"Retry-After": str(seconds)}


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; sign in with valid credentials, the same vague error otherwise."""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), 400 if request.method == "POST" else 200
    email, ip = form.email.data.strip().lower(), throttle.client_key(request.remote_addr)
    wait = throttle.begin(email, ip)
    if wait:
        return _throttled(wait)
    user = find_user(email)
    # Hash something even for an unknown email, so the answer time does not reveal who exists.
    valid = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
    if user is None or not valid or not user.is_active:
        return render_template("login.html", form=form, error=BAD_CREDENTIALS), 200
    throttle.succeeded(email, ip)
    session.clear()
    login_user(user)
    sessions.start(user)
    user.last_login_at = datetime.now(UTC)
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End every session of this user (POST with a CSRF token, so a link elsewhere cannot sign anyone out)."""
    if current_user.is_authenticated:
        current_user.end_sessions()
        db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    """Register the login routes and the answer to anonymous requests."""
    login_manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)
