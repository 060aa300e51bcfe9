"""Entry point for ``gunicorn wsgi:app``, ``huey_consumer wsgi.huey`` and ``flask --app wsgi``."""

from khaacho import create_app
from khaacho.extensions import huey

app = create_app()

import khaacho.tasks  # noqa: E402,F401  (registers the Huey tasks with this app's queue)

__all__ = ["app", "huey"]
