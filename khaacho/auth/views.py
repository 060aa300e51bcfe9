"""``/login`` and ``/logout``: a CSRF-protected form, throttled per IP and per account."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from khaacho.auth.cli import find_user
from khaacho.auth.decorators import unauthorized
from khaacho.extensions import db, limiter, login_manager

bp = Blueprint("auth", __name__)

# Only failed attempts count: an office behind one NAT address gets more room than one account.
IP_LIMITS = "10/minute;50/hour"
ACCOUNT_LIMITS = "5/minute;20/hour"
BAD_CREDENTIALS = "Invalid email or password."


class LoginForm(FlaskForm):
    """Email and password; the hidden ``csrf_token`` comes from FlaskForm."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("no user has this password")


def _account_key() -> str:
    return "login-account:" + request.form.get("email", "").strip().lower()[:255]


def _login_failed(_response) -> bool:
    return g.get("login_failed", False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so ``?next=`` cannot send a user elsewhere after login."""
    if target:
        parts = urlsplit(target)
        if target.startswith("/") and not target.startswith("//") and not parts.netloc and "\\" not in target:
            return target
    return url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(IP_LIMITS, key_func=get_remote_address, methods=["POST"], deduct_when=_login_failed)
@limiter.limit(ACCOUNT_LIMITS, key_func=_account_key, methods=["POST"], deduct_when=_login_failed)
def login() -> ResponseReturnValue:
    """Show the login form; sign in with valid credentials, the same vague error otherwise."""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), 400 if request.method == "POST" else 200
    user = find_user(form.email.data)
    # Hash something even for an unknown email, so the answer time does not reveal who exists.
    valid = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
    if user is None or not valid or not user.is_active:
        g.login_failed = True
        return render_template("login.html", form=form, error=BAD_CREDENTIALS), 200
    session.clear()
    login_user(user)
    user.last_login_at = datetime.now(UTC)
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")))


@bp.errorhandler(429)
def too_many_attempts(_error: Exception) -> ResponseReturnValue:
    """Throttled: the form again, with a clear message and when to retry."""
    message = "Too many failed sign-in attempts. Wait a minute and try again."
    return render_template("login.html", form=LoginForm(), error=message), 429, {"Retry-After": "60"}


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (POST with a CSRF token, so a link elsewhere cannot sign anyone out)."""
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    """Register the login routes and the answer to anonymous requests."""
    login_manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)
