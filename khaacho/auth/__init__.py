"""Ops users: login session loading, API tokens and the ``flask users`` commands."""

from __future__ import annotations

from flask import Flask

from khaacho.auth import cli, sessions
from khaacho.extensions import db, login_manager
from khaacho.models import User


def init_app(app: Flask) -> None:
    """Wire Flask-Login, the login routes and the ``users`` CLI group."""
    from khaacho.auth import views

    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load_user(raw_id: str) -> User | None:
        user_id = sessions.user_id(raw_id)
        user = db.session.get(User, user_id) if user_id is not None else None
        return user if user is not None and sessions.valid(user) else None

    views.init_app(app)
    app.cli.add_command(cli.users)
