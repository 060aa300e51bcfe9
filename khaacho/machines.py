"""Machine-facing blueprints: requests from providers skip the request hooks meant for people.

A provider's webhook carries no cookie, session or form, yet Flask runs every app-wide hook for
it: CSRF protection, Flask-Login's remember cookie, Flask-Limiter's route limits (which do
nothing here: intake limits senders itself). Together they were a sixth of a webhook's CPU. For
a blueprint listed in :attr:`KhaachoFlask.machine_blueprints`, only its own hooks and the
app-wide ones marked :func:`for_machines_too` (request id, security headers) run.
``after_this_request`` is not available on those blueprints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, Response, request

Hook = TypeVar("Hook", bound=Callable)


def for_machines_too(hook: Hook) -> Hook:
    """Mark an app-wide request hook to run for machine-facing blueprints as well."""
    hook.for_machines = True  # type: ignore[attr-defined]
    return hook


class KhaachoFlask(Flask):
    """Flask, sparing machine-facing blueprints the hooks that only people's requests need.

    Each override keeps Flask's order: app-wide before hooks first; after and teardown hooks
    the blueprint's first, each list in reverse.
    """

    machine_blueprints: frozenset[str] = frozenset()

    @staticmethod
    def _marked(registry: dict[str | None, list[Callable]]) -> list[Callable]:
        return [hook for hook in registry.get(None, ()) if getattr(hook, "for_machines", False)]

    def _hooks(self, registry: dict[str | None, list[Callable]], blueprint: str) -> list[Callable]:
        return self._marked(registry) + list(registry.get(blueprint, ()))

    def preprocess_request(self) -> Response | None:
        """Flask's, or for a machine-facing blueprint its own and the marked app-wide hooks."""
        blueprint = request.blueprint
        if blueprint not in self.machine_blueprints:
            return super().preprocess_request()
        for hook in self._hooks(self.before_request_funcs, blueprint):
            answer = hook()
            if answer is not None:
                return answer
        return None

    def process_response(self, response: Response) -> Response:
        """Flask's, or for a machine-facing blueprint its own and the marked app-wide hooks."""
        blueprint = request.blueprint
        if blueprint not in self.machine_blueprints:
            return super().process_response(response)
        own, marked = self.after_request_funcs.get(blueprint, ()), self._marked(self.after_request_funcs)
        for hook in (*reversed(own), *reversed(marked)):
            response = hook(response)
        return response

    def do_teardown_request(self, exc: BaseException | None = None) -> None:
        """Flask's, or for a machine-facing blueprint its own and the marked app-wide hooks."""
        blueprint = request.blueprint
        if blueprint not in self.machine_blueprints:
            return super().do_teardown_request(exc)
        for hook in reversed(self._hooks(self.teardown_request_funcs, blueprint)):
            hook(exc)
        return None
