"""Huey tasks that run inside a fresh Flask app context on every call."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Flask, current_app, has_app_context

from khaacho.extensions import huey

_bound_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Remember the app tasks run in; in immediate mode (unit tests) tasks run inline."""
    global _bound_app
    _bound_app = app
    if app.config.get("HUEY_IMMEDIATE"):
        huey.immediate = True


def bound_app() -> Flask:
    """The app tasks run in (the current one inside an app context)."""
    if has_app_context():
        return current_app._get_current_object()
    if _bound_app is None:
        raise RuntimeError("no Flask app bound to the queue: import wsgi, which calls create_app")
    return _bound_app


def _in_app_context(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with bound_app().app_context():
            return fn(*args, **kwargs)

    return run


def app_task(**options) -> Callable:
    """``huey.task`` whose body runs in a fresh app context (its own database session)."""
    return lambda fn: huey.task(**options)(_in_app_context(fn))


def app_periodic_task(validate_datetime, **options) -> Callable:
    """``huey.periodic_task`` whose body runs in a fresh app context."""
    return lambda fn: huey.periodic_task(validate_datetime, **options)(_in_app_context(fn))
