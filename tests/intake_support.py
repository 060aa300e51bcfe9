"""Helpers for the webhook intake tests: relay after a webhook, hold queued tasks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from huey.storage import MemoryStorage
from werkzeug.test import TestResponse

from khaacho.extensions import huey
from khaacho.processing import relay
from khaacho.webhooks import WEBHOOK_PATHS


class RelayingClient(FlaskClient):
    """The test client, then the relay as the consumer would run it, after each webhook POST.

    The test apps' ``test_client_class``: a stored message is queued (and, in Huey's immediate
    mode, processed) by the time the POST returns, as it is moments later in production.
    """

    def open(self, *args, **kwargs) -> TestResponse:
        """Send the request; after a webhook POST, relay what it stored."""
        response = super().open(*args, **kwargs)
        if response.request.method == "POST" and response.request.path in WEBHOOK_PATHS:
            with self.application.app_context():
                relay.drain()
        return response


def hold_tasks(monkeypatch: pytest.MonkeyPatch, storage: MemoryStorage | None = None) -> Callable[[], list]:
    """Keep queued tasks in memory instead of running them inline; returns a lister of queued ids.

    Call it after the app is built: ``create_app`` switches Huey back to immediate mode.
    """
    monkeypatch.setattr(huey, "_immediate", False)
    monkeypatch.setattr(huey, "storage", storage or MemoryStorage("khaacho-test"))
    return lambda: sorted(task.args[0] for task in huey.pending())


def hold_tasks_of_test_app(request: pytest.FixtureRequest,
                           monkeypatch: pytest.MonkeyPatch) -> Callable[[], list]:
    """``hold_tasks`` once the test's ``app``/``any_app`` fixture is built."""
    request.getfixturevalue("any_app" if "any_app" in request.fixturenames else "app")
    return hold_tasks(monkeypatch)
