"""What the operator asked the desk for: filters and date ranges read from the query string."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta

from werkzeug.datastructures import MultiDict

from khaacho.models import ORDER_STATUSES

# Control characters match no stored text, and PostgreSQL refuses a NUL in any text parameter.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID = 9223372036854775807


class BadFilter(ValueError):
    """A filter value the desk cannot read (answered with 400 and this message)."""


def parse_day(raw: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` day, None when empty; BadFilter otherwise."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadFilter(f"{name} must be a date written YYYY-MM-DD") from None


def day_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """The UTC instants bounding the days from ``start`` to ``end``, both inclusive (end exclusive)."""
    if start and end and end < start:
        raise BadFilter("to must not be before from")
    low = datetime.combine(start, time.min, UTC) if start else None
    high = datetime.combine(end + timedelta(days=1), time.min, UTC) if end else None
    return low, high


def parse_status(raw: str | None) -> str:
    """An order status, or "" for any; BadFilter for an unknown one."""
    status = (raw or "").strip()
    if status and status not in ORDER_STATUSES:
        raise BadFilter(f"status must be one of {', '.join(ORDER_STATUSES)}")
    return status


def search_text(raw: str | None) -> str:
    """A search box's text: control characters dropped, at most 100 characters."""
    return _CONTROL.sub("", raw or "").strip()[:100]


def _id(raw: str | None) -> int | None:
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if 0 < value <= MAX_ID else None


@dataclass(frozen=True)
class OrderFilters:
    """The orders list's filters and its keyset cursor (``before``: the last order id seen)."""

    status: str = ""
    q: str = ""
    start: date | None = None
    end: date | None = None
    before: int | None = None

    @classmethod
    def from_args(cls, args: MultiDict) -> OrderFilters:
        """Read the filters; a bad date or status is a BadFilter, a bad cursor is the first page."""
        filters = cls(status=parse_status(args.get("status")),
                      q=search_text(args.get("q")),
                      start=parse_day(args.get("from"), "from"), end=parse_day(args.get("to"), "to"),
                      before=_id(args.get("before")))
        day_range(filters.start, filters.end)
        return filters

    def args(self, **changes) -> dict:
        """Query-string arguments for these filters (with changes), without empty ones."""
        values = {**asdict(self), **changes}
        named = {"status": values["status"], "q": values["q"], "from": values["start"],
                 "to": values["end"], "before": values["before"]}
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in named.items() if v}
