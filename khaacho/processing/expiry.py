"""Pending orders the shop never confirmed expire after ORDER_CONFIRM_HOURS, with one notice each."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import Order, OrderStatus, utcnow
from khaacho.orders import lifecycle
from khaacho.replies import notices

log = logging.getLogger(__name__)
BATCH_SIZE = 200


def expire_pending(batch_size: int = BATCH_SIZE) -> int:
    """Expire every pending order untouched for ORDER_CONFIRM_HOURS; how many this call expired.

    Each batch commits with its notices (sent after the commit). The move is conditional, so
    consumers running this at once, or a shop confirming at the last moment, expire nothing twice.
    """
    cutoff = utcnow() - timedelta(hours=current_app.config["ORDER_CONFIRM_HOURS"])
    expired = 0
    while True:
        query = (select(Order.id).where(Order.status == OrderStatus.PENDING, Order.updated_at < cutoff)
                 .order_by(Order.id).limit(batch_size).with_for_update(skip_locked=True))
        ids = list(db.session.scalars(query))
        for order_id in ids:
            if lifecycle.transition(order_id, OrderStatus.PENDING, OrderStatus.EXPIRED, lifecycle.SYSTEM):
                notices.order_notice(order_id, OrderStatus.EXPIRED)
                expired += 1
        db.session.commit()
        if len(ids) < batch_size:
            break
    if expired:
        log.info("expired %s pending orders", expired)
    return expired
