"""Helpers for the webhook intake tests: hold queued tasks instead of running them inline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from huey.storage import MemoryStorage

from khaacho.extensions import huey


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
