"""Pause switches shared by every process through the ``switches`` table.

``processing``: webhooks are still stored and acknowledged, but no message leaves ``queued``
(the sweep and the relay check :func:`is_paused` first; the task's claim carries
:func:`paused_clause` as a condition). ``replies``: replies are composed and stored ``held``
(the worker's insert of the reply reads the switch in the same statement); resuming sends each
held reply once.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select, update

from khaacho.extensions import db
from khaacho.models import Switch, dialect_insert, utcnow

PROCESSING = "processing"
REPLIES = "replies"
NAMES = (PROCESSING, REPLIES)


def is_paused(name: str) -> bool:
    """True while the named switch is paused (read from the database on every call).

    Read on a connection of its own, so a long-lived caller (the relay) holds no transaction open.
    """
    if name not in NAMES:
        raise ValueError(f"unknown switch {name!r}")
    with db.engine.connect() as conn:
        return bool(conn.scalar(select(Switch.paused).where(Switch.name == name)))


def paused_clause(name: str) -> ColumnElement[bool]:
    """True while the named switch is paused, as an SQL condition a statement checks as it runs."""
    if name not in NAMES:
        raise ValueError(f"unknown switch {name!r}")
    table = Switch.__table__
    return exists().where(table.c.name == name, table.c.paused.is_(True))


def states() -> dict[str, Switch | None]:
    """Every switch by name, None for one never touched (running)."""
    rows = {s.name: s for s in db.session.scalars(select(Switch))}
    return {name: rows.get(name) for name in NAMES}


def set_paused(name: str, paused: bool, by: str) -> bool:
    """Pause or resume a switch (committed); True when its state changed."""
    if name not in NAMES:
        raise ValueError(f"unknown switch {name!r}")
    now = utcnow()
    stmt = dialect_insert(db.engine.dialect.name, Switch.__table__).values(
        name=name, paused=False, changed_by=None, changed_at=now)
    db.session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    changed = db.session.execute(
        update(Switch).where(Switch.name == name, Switch.paused.is_(not paused))
        .values(paused=paused, changed_by=by[:255], changed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(changed)
