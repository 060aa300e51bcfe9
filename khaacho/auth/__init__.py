"""Ops users: login session loading, API tokens and the ``flask users`` commands."""

from __future__ import annotations

from flask import Flask

from khaacho.auth import cli
from khaacho.extensions import db, login_manager
from khaacho.models import User


def init_app(app: Flask) -> None:
    """Wire Flask-Login, the login routes and the ``users`` CLI group."""
    from khaacho.auth import views

    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        return db.session.get(User, int(user_id)) if user_id.isdigit() else None

    views.init_app(app)
    app.cli.add_command(cli.users)
