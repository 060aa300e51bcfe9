"""The dashboard's message list: filters read from the query string, and the bounded query."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from werkzeug.datastructures import MultiDict

from khaacho.extensions import db
from khaacho.models import MESSAGE_STATUSES, REPLAYABLE_STATUSES, SOURCES, WebhookMessage
from khaacho.stats import MAX_HOURS, window_start

PER_PAGE = 25
BULK_REPLAY_MAX = 1000


# Control characters match no stored text, and PostgreSQL refuses a NUL in any text parameter.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(raw: str, limit: int) -> str:
    return _CONTROL.sub("", raw).strip()[:limit]


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(raw or default), low), high)
    except ValueError:
        return default


@dataclass(frozen=True)
class MessageFilters:
    """What the operator asked to see; unknown values fall back to "any" rather than erroring."""

    status: str = ""
    source: str = ""
    phone: str = ""
    q: str = ""
    hours: int = 24
    page: int = 1

    @classmethod
    def from_args(cls, args: MultiDict) -> MessageFilters:
        """Read the filters from request arguments."""
        status = args.get("status", "")
        source = args.get("source", "")
        return cls(
            status=status if status in MESSAGE_STATUSES else "",
            source=source if source in SOURCES else "",
            phone=_text(args.get("phone", ""), 32),
            q=_text(args.get("q", ""), 100),
            hours=_int(args.get("hours"), 24, 1, MAX_HOURS),
            page=_int(args.get("page"), 1, 1, 100_000),
        )

    def args(self, **changes) -> dict:
        """Query-string arguments for these filters (with changes), without empty ones."""
        values = {**asdict(self), **changes}
        return {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}

    @property
    def bulk_replayable(self) -> bool:
        """Bulk replay is offered only for a filter on a status that replay can fix."""
        return self.status in REPLAYABLE_STATUSES


def _phone_digits(raw: str) -> str:
    return re.sub(r"\D", "", raw)


def filtered(filters: MessageFilters, now: datetime | None = None) -> Select:
    """Messages matching the filters inside their time window (which bounds every scan)."""
    m = WebhookMessage
    query = select(m).where(m.created_at >= window_start(filters.hours, now))
    if filters.status:
        query = query.where(m.status == filters.status)
    if filters.source:
        query = query.where(m.webhook_source == filters.source)
    if filters.phone:
        digits = _phone_digits(filters.phone)
        matches = [m.sender_id == filters.phone]
        if digits:
            matches.append(m.phone_number.endswith(digits, autoescape=True))
        query = query.where(or_(*matches))
    if filters.q:
        query = query.where(m.message_text.icontains(filters.q, autoescape=True))
    return query


def count(filters: MessageFilters) -> int:
    """How many messages match the filters."""
    return db.session.scalar(select(func.count()).select_from(filtered(filters).subquery()))


@dataclass(frozen=True)
class Page:
    """One page of matching messages."""

    items: list[WebhookMessage]
    total: int
    page: int
    pages: int


def page_of(filters: MessageFilters) -> Page:
    """The requested page of matching messages, newest first."""
    total = count(filters)
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(filters.page, pages)
    items = list(db.session.scalars(
        filtered(filters)
        .order_by(WebhookMessage.created_at.desc(), WebhookMessage.id.desc())
        .limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ))
    return Page(items=items, total=total, page=page, pages=pages)


def replayable_ids(filters: MessageFilters) -> list[int]:
    """Ids of the messages a bulk replay with these filters would re-queue (oldest first, capped)."""
    if not filters.bulk_replayable:
        return []
    return list(db.session.scalars(
        filtered(filters).with_only_columns(WebhookMessage.id)
        .order_by(WebhookMessage.created_at, WebhookMessage.id).limit(BULK_REPLAY_MAX)
    ))
