"""Twilio MessageSids the retention cleanup deleted, so a later delivery of one is recorded stale.

Twilio signs no timestamp, so a captured request stays valid for as long as the auth token does,
and Twilio sends each MessageSid once: a sid we stored and then deleted can only come back as a
replay. The cleanup keeps 8 bytes of each deleted Twilio sid's SHA-256 (``twilio_tombstones``,
one BIGINT primary key per row); a collision would mark one genuine message stale, which ops can
replay, at odds of about n / 2**64.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from khaacho.models import TwilioTombstone, dialect_insert

_table = TwilioTombstone.__table__


def sid_hash(sid: str) -> int:
    """The signed 64-bit number a sid is remembered by."""
    return int.from_bytes(hashlib.sha256(sid.encode()).digest()[:8], "big", signed=True)


def bury(conn: Connection, sids: Iterable[str]) -> None:
    """Remember these deleted Twilio sids (in the caller's transaction)."""
    hashes = sorted({sid_hash(sid) for sid in sids})
    if hashes:
        stmt = dialect_insert(conn.dialect.name, _table).values([{"sid_hash": h} for h in hashes])
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["sid_hash"]))


def buried(conn: Connection, sids: Iterable[str]) -> set[str]:
    """Which of these sids the cleanup deleted before (one primary-key lookup per sid, one statement)."""
    by_hash = {sid_hash(sid): sid for sid in sids}
    if not by_hash:
        return set()
    found = conn.scalars(select(_table.c.sid_hash).where(_table.c.sid_hash.in_(list(by_hash))))
    return {by_hash[h] for h in found}
