"""Entry point for ``gunicorn wsgi:app``, ``huey_consumer wsgi.huey`` and ``flask --app wsgi``."""

import gc

from khaacho import create_app
from khaacho.extensions import huey

app = create_app()

import khaacho.tasks  # noqa: E402,F401  (registers the Huey tasks with this app's queue)

# The ~120,000 objects of the loaded app live as long as the process: keep them out of the
# garbage collector's full passes, which otherwise scan them all (tens of ms a pass, a stall
# every few thousand webhooks).
gc.freeze()

__all__ = ["app", "huey"]
