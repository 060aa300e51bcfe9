"""Delivery statuses of the replies we sent: which callback may overwrite which.

A reply moves forward through accepted → sending → sent → delivered → read → played and never
back, so late or repeated callbacks change nothing. A failure (``failed``, ``undelivered``) is
final and outranks every other status: it is recorded even after ``delivered`` (Meta and Twilio
do report a failure after a delivery), and a later ``read`` or ``delivered`` does not erase it
or its error. The first failure recorded is the one kept.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from sqlalchemy import Integer, Update, bindparam, case, func, update

from khaacho.events import StatusUpdate
from khaacho.models import OutboundMessage

FAILED_RANK = 100
DELIVERY_RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "read": 5, "played": 6,
    "failed": FAILED_RANK, "undelivered": FAILED_RANK,
}
_outbound = OutboundMessage.__table__


class StatusMoves(NamedTuple):
    """The replies a callback moves forward: how many, and :func:`status_statement`'s parameters."""

    count: int
    params: dict


def status_update(updates: list[StatusUpdate]) -> StatusMoves | None:
    """Each matching outbound message's highest-ranked new status, as parameters; None when none is known."""
    best: dict[str, StatusUpdate] = {}
    for u in updates:
        rank = DELIVERY_RANK.get(u.status)
        current = best.get(u.provider_message_id)
        if rank is not None and (current is None or rank > DELIVERY_RANK[current.status]):
            best[u.provider_message_id] = u
    if not best:
        return None
    params = {}
    for i, u in enumerate(best.values()):
        params.update({f"_reply_{i}": u.provider_message_id, f"_status_{i}": u.status,
                       f"_rank_{i}": DELIVERY_RANK[u.status], f"_error_{i}": u.error})
    return StatusMoves(len(best), params)


@functools.lru_cache(maxsize=16)
def status_statement(count: int) -> Update:
    """One UPDATE moving ``count`` replies, each to its new status if that ranks above its current one.

    Built once per count, its values bound (``_reply_0``, ``_status_0``, …, and the caller's
    ``now``), so intake compiles it once, not on every callback.
    """
    reply = _outbound.c.provider_message_id
    replies = [bindparam(f"_reply_{i}", type_=reply.type) for i in range(count)]

    def by_reply(name: str, type_, otherwise=None):
        """The reply's own value of the parameter ``name`` (``otherwise`` for any other row)."""
        return case(*((reply == replies[i], bindparam(f"{name}_{i}", type_=type_)) for i in range(count)),
                    else_=otherwise)

    current_rank = func.coalesce(case(DELIVERY_RANK, value=_outbound.c.delivery_status), 0)
    error = _outbound.c.delivery_error
    return (
        update(_outbound)
        .where(reply.in_(replies), current_rank < by_reply("_rank", Integer()))
        .values(delivery_status=by_reply("_status", _outbound.c.delivery_status.type),
                updated_at=bindparam("now"), delivery_error=by_reply("_error", error.type, error))
    )
