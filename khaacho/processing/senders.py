"""The per-sender limit: ``WEBHOOK_RATE_LIMIT_MAX`` messages per ``WEBHOOK_RATE_LIMIT_WINDOW`` minutes.

Counted by the relay on the limits library's fixed window, in the storage named by
``RATELIMIT_STORAGE_URI``: Redis in production, shared by every relay of every machine; memory
in the embedded mode, where one consumer process runs the one relay, so the count is still exact.
A storage error lets the messages through (fail open), logs a warning, and skips the storage for
:data:`PAUSE_AFTER_FAILURE_SECONDS` so an unreachable Redis costs one timeout per pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string

log = logging.getLogger(__name__)
# The audit reason of the row the relay writes when it let messages through unchecked.
LIMITER_DOWN_REASON = "rate limiter unavailable, failed open"
PAUSE_AFTER_FAILURE_SECONDS = 5.0
NAMESPACE = ("khaacho", "webhook-sender")


@dataclass(frozen=True, slots=True)
class Allowance:
    """A sender's count in the current window after this batch, and how many of the batch fit."""

    count: int
    allowed: int


class SenderLimit:
    """Counts each sender's new messages in a shared fixed window; owns the keys it counts under."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._paused_until = 0.0

    @classmethod
    def from_config(cls, config: Mapping) -> SenderLimit:
        """The limit on the configured storage (``RATELIMIT_STORAGE_URI`` and its options)."""
        options = config["RATELIMIT_STORAGE_OPTIONS"]
        return cls(storage_from_string(config["RATELIMIT_STORAGE_URI"], **options))

    @staticmethod
    def item(config: Mapping) -> RateLimitItemPerMinute:
        """The configured allowance (read each time, so a changed setting applies at once)."""
        return RateLimitItemPerMinute(config["WEBHOOK_RATE_LIMIT_MAX"], config["WEBHOOK_RATE_LIMIT_WINDOW"])

    def key(self, item: RateLimitItemPerMinute, sender: str) -> str:
        """Where ``sender``'s count for ``item`` lives in the storage."""
        return item.key_for(*NAMESPACE, sender)

    def take(self, item: RateLimitItemPerMinute, sender: str, amount: int) -> Allowance | None:
        """Count ``amount`` new messages of ``sender``; None when the storage is unreachable."""
        if time.monotonic() < self._paused_until:
            return None
        try:
            count = int(self.storage.incr(self.key(item, sender), item.get_expiry(), amount=amount))
        except Exception as exc:  # any storage error (Redis down, timeout): fail open
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
            log.warning("sender limit unavailable, failing open for %ss: %s: %s",
                        PAUSE_AFTER_FAILURE_SECONDS, type(exc).__name__, exc)
            return None
        return Allowance(count, max(0, min(amount, item.amount - (count - amount))))
