"""Server-side validity of signed-in sessions: a per-user generation and an absolute lifetime.

The session is a signed cookie, so it cannot be revoked by itself. At sign-in it gets the user's
``session_generation`` and the time; on every people request Flask-Login's user loader (one
primary-key read it did anyway) refuses a session whose generation is no longer the user's or
that is older than ``PERMANENT_SESSION_LIFETIME``. Sign-out, a password change, a role change and
deactivation bump the generation in the database, so every older cookie stops working on every
worker and instance. Webhooks never open a session, so none of this runs for them.
"""

from __future__ import annotations

import time

from flask import current_app, session

from khaacho.models import User

GENERATION_KEY = "_generation"
SIGNED_IN_KEY = "_signed_in_at"
MAX_USER_ID = 2**31 - 1  # users.id is an INTEGER


def start(user: User) -> None:
    """Mark the freshly signed-in session with the user's generation and the time."""
    session[GENERATION_KEY] = user.session_generation
    session[SIGNED_IN_KEY] = int(time.time())
    session.permanent = True


def valid(user: User) -> bool:
    """Whether this request's session still belongs to ``user``: same generation, within its lifetime."""
    signed_in = session.get(SIGNED_IN_KEY)
    if session.get(GENERATION_KEY) != user.session_generation or not isinstance(signed_in, int):
        return False
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    return user.is_active and 0 <= time.time() - signed_in < lifetime


def user_id(raw: str) -> int | None:
    """The user id a session names, or None when it cannot be one."""
    return int(raw) if raw.isdigit() and len(raw) < 11 and int(raw) <= MAX_USER_ID else None
