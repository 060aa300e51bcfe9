"""Machine-facing blueprints: requests from providers skip the request hooks meant for people.

A provider's webhook carries no cookie, session or form, yet Flask runs every app-wide hook for
it: CSRF protection, Flask-Login's remember cookie, Flask-Limiter's route limits (which do
nothing here: intake limits senders itself). Together they were a sixth of a webhook's CPU. For
a blueprint listed in :attr:`KhaachoFlask.machine_blueprints`, only its own hooks and the
app-wide ones marked :func:`for_machines_too` (request id, security headers) run.
``after_this_request`` is not available on those blueprints.

A route can go further and be *direct* (:meth:`KhaachoFlask.add_direct_route`): its handler sees
the WSGI environ before Flask builds a request context and either answers it or declines it
(``None``), and then Flask serves the request as usual. Meta's webhook is one
(:mod:`khaacho.webhooks.direct`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Response, request

Hook = TypeVar("Hook", bound=Callable)
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
DirectHandler = Callable[[Flask, dict], WSGIApp | None]


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct_routes: dict[tuple[str, str], DirectHandler] = {}

    def add_direct_route(self, method: str, path: str, handler: DirectHandler) -> None:
        """Offer requests for exactly ``method`` ``path`` to ``handler`` before Flask sees them.

        ``handler(app, environ)`` returns a WSGI app that answers the request, or None to leave
        it to Flask; a handler that read the body must put it back in ``wsgi.input`` first.
        """
        self.direct_routes[(method, path)] = handler

    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """A direct route's answer when its handler gives one, else Flask's."""
        handler = self.direct_routes.get((environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")))
        if handler is not None:
            answer = handler(self, environ)
            if answer is not None:
                return answer(environ, start_response)
        return super().wsgi_app(environ, start_response)

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
