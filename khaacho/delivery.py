"""Delivery statuses of the replies we sent: which callback may overwrite which.

A reply moves forward through accepted → sending → sent → delivered → read → played and never
back, so late or repeated callbacks change nothing. A failure (``failed``, ``undelivered``) is
final and outranks every other status: it is recorded even after ``delivered`` (Meta and Twilio
do report a failure after a delivery), and a later ``read`` or ``delivered`` does not erase it
or its error. The first failure recorded is the one kept.
"""

from __future__ import annotations

from sqlalchemy import Update, case, func, or_, update

from khaacho.events import StatusUpdate
from khaacho.models import OutboundMessage, utcnow

FAILED_RANK = 100
DELIVERY_RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "read": 5, "played": 6,
    "failed": FAILED_RANK, "undelivered": FAILED_RANK,
}
_outbound = OutboundMessage.__table__


def status_update(updates: list[StatusUpdate]) -> Update | None:
    """One UPDATE moving each matching outbound message to its highest-ranked new status, or None."""
    best: dict[str, StatusUpdate] = {}
    for u in updates:
        rank = DELIVERY_RANK.get(u.status)
        current = best.get(u.provider_message_id)
        if rank is not None and (current is None or rank > DELIVERY_RANK[current.status]):
            best[u.provider_message_id] = u
    if not best:
        return None
    pid = _outbound.c.provider_message_id
    current_rank = func.coalesce(case(DELIVERY_RANK, value=_outbound.c.delivery_status), 0)
    new_status = case({k: u.status for k, u in best.items()}, value=pid)
    new_rank = case({k: DELIVERY_RANK[u.status] for k, u in best.items()}, value=pid)
    return (
        update(_outbound)
        .where(or_(*(pid == k for k in best)), current_rank < new_rank)
        .values(delivery_status=new_status, updated_at=utcnow(),
                delivery_error=case({k: u.error for k, u in best.items()}, value=pid,
                                    else_=_outbound.c.delivery_error))
    )
