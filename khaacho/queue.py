"""Huey tasks that run inside a fresh Flask app context on every call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app, has_app_context
from huey.storage import RedisStorage, SqliteStorage

from khaacho.extensions import huey

_bound_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Remember the app tasks run in and point the queue at its storage (Redis, or SQLite).

    In immediate mode (unit tests) tasks run inline on in-memory storage.
    """
    global _bound_app
    _bound_app = app
    config = app.config
    if config["HUEY_IMMEDIATE"]:
        huey.immediate = True
        return
    if config["REDIS_URL"]:
        huey.storage_class, huey.storage_kwargs = RedisStorage, {"url": config["REDIS_URL"]}
    else:
        path = Path(config["HUEY_SQLITE_PATH"])
        path.parent.mkdir(parents=True, exist_ok=True)
        huey.storage_class, huey.storage_kwargs = SqliteStorage, {"filename": str(path)}
    if huey.immediate:
        huey.immediate = False  # Huey's setter builds the storage from the class and kwargs above
    else:
        huey.storage = huey.create_storage()


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


@huey.on_startup()
def _start_relay() -> None:
    """The consumer process relays stored messages to the queue (once per process, see relay)."""
    from khaacho.processing import relay

    relay.start_in_consumer(bound_app())


def app_task(**options) -> Callable:
    """``huey.task`` whose body runs in a fresh app context (its own database session)."""
    return lambda fn: huey.task(**options)(_in_app_context(fn))


def app_periodic_task(validate_datetime, **options) -> Callable:
    """``huey.periodic_task`` whose body runs in a fresh app context."""
    return lambda fn: huey.periodic_task(validate_datetime, **options)(_in_app_context(fn))
