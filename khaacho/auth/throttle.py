"""Failed sign-ins, throttled per account and IP, per IP, and per account, in the database.

The state is the ``login_attempts`` table, so every worker and instance sees the same counts,
in the embedded mode too. An attempt is written *before* its password is checked and counted
with the others, so parallel guesses on several workers cannot slip past a limit together; a
throttled attempt removes its row again (waiting out the limit is enough) and a successful one
removes the failures of its account and IP. The tight limit is per account *and* IP, so an
attacker elsewhere cannot lock the owner out; the per-account ceiling is much higher and bounds
a guesser spread over many addresses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, insert, select

from khaacho.extensions import db
from khaacho.models import LoginAttempt, utcnow


@dataclass(frozen=True)
class Limit:
    """At most ``amount`` failed attempts sharing a key within ``window``."""

    amount: int
    window: timedelta


ACCOUNT_AND_IP = Limit(5, timedelta(minutes=15))
IP = Limit(20, timedelta(minutes=15))
ACCOUNT = Limit(50, timedelta(hours=1))
LIMITS = (ACCOUNT_AND_IP, IP, ACCOUNT)
KEEP = max(limit.window for limit in LIMITS)
_attempts = LoginAttempt.__table__
# The address may come from X-Forwarded-For (see TRUSTED_PROXY_COUNT): whatever a client wrote there.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def client_key(remote_addr: str | None) -> str:
    """The address an attempt is counted under: printable, at most 64 characters."""
    return _CONTROL.sub("", remote_addr or "")[:64] or "-"


def _where(limit: Limit, email: str, ip: str) -> ColumnElement[bool]:
    c = _attempts.c
    if limit is ACCOUNT_AND_IP:
        return (c.email == email) & (c.client_ip == ip)
    return c.client_ip == ip if limit is IP else c.email == email


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retry_after(limit: Limit, email: str, ip: str, now: datetime) -> int:
    """Seconds until one more attempt fits under ``limit``."""
    c = _attempts.c
    oldest_needed = db.session.scalar(
        select(c.created_at).where(_where(limit, email, ip), c.created_at > now - limit.window)
        .order_by(c.created_at.desc()).offset(limit.amount - 1).limit(1)
    )
    if oldest_needed is None:
        return 1
    return max(1, math.ceil((_aware(oldest_needed) + limit.window - now).total_seconds()))


def begin(email: str, ip: str) -> int:
    """Record an attempt for ``email`` from ``ip`` (a :func:`client_key`); 0, or the seconds to wait."""
    now = utcnow()
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - KEEP))
    attempt_id = db.session.execute(
        insert(LoginAttempt).values(email=email, client_ip=ip, created_at=now).returning(LoginAttempt.id)
    ).scalar_one()
    db.session.commit()
    for limit in LIMITS:
        counted = db.session.scalar(
            select(func.count()).select_from(_attempts)
            .where(_where(limit, email, ip), _attempts.c.created_at > now - limit.window)
        )
        if counted > limit.amount:
            db.session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))
            db.session.commit()
            return _retry_after(limit, email, ip, now)
    return 0


def succeeded(email: str, ip: str) -> None:
    """Forget the failures of this account from this IP (the caller commits)."""
    db.session.execute(delete(LoginAttempt).where(_where(ACCOUNT_AND_IP, email, ip)))
