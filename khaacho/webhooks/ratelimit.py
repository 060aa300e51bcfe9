"""Counting on Flask-Limiter's storage (Redis in production, memory embedded), failing open.

The manual checks bypass Flask-Limiter's ``swallow_errors`` and ``key_prefix``, so both are done
here: keys start with ``khaacho``, and a storage error lets the request through, logs a warning,
is counted in :data:`failures`, and keeps the limiter skipped for a few seconds so an unreachable
Redis costs one timeout per process per pause rather than one per request.

When the limiter's storage and Huey's queue are one Redis database, :func:`admit` counts a
request's senders and queues their admitted messages in a single script call: one round trip
where a count and then an enqueue would take two.
"""

from __future__ import annotations

import logging
import time

import redis
from huey.storage import RedisStorage as RedisQueue
from limits import RateLimitItem
from limits.storage import RedisStorage

from khaacho.extensions import huey, limiter

log = logging.getLogger(__name__)
PAUSE_AFTER_FAILURE_SECONDS = 5.0
# Per sender: the same increment and expiry as limits' ``RedisStorage.incr`` on the same key
# (so Flask-Limiter's storage stays the one count), then LPUSH onto Huey's queue of the task
# messages still within the limit. KEYS: the queue, then one counter per sender. ARGV: expiry,
# limit, each sender's message count, then every task message in sender order.
ADMIT_LUA = """
local expiry, limit = ARGV[1], tonumber(ARGV[2])
local position = 2 + #KEYS - 1
local counts = {}
for s = 2, #KEYS do
  local amount = tonumber(ARGV[1 + s])
  local current = redis.call("incrby", KEYS[s], amount)
  if current == amount then
    redis.call("expire", KEYS[s], expiry)
  end
  for i = 1, math.min(amount, limit - (current - amount)) do
    redis.call("lpush", KEYS[1], ARGV[position + i])
  end
  position = position + amount
  counts[s - 1] = current
end
return counts
"""

failures = 0
_paused_until = 0.0
_scripts: dict[int, tuple[RedisStorage, redis.commands.core.Script]] = {}


def paused() -> bool:
    """True while the limiter is skipped after a storage failure."""
    return time.monotonic() < _paused_until


def _failed(exc: Exception) -> None:
    global failures, _paused_until
    failures += 1
    _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
    log.warning("rate limiter unavailable, failing open for %ss: %s: %s",
                PAUSE_AFTER_FAILURE_SECONDS, type(exc).__name__, exc)


def add(item: RateLimitItem, *key: str, amount: int = 1) -> int | None:
    """Add ``amount`` hits to ``key``'s fixed window; the count after, or None when the storage is down."""
    global failures
    if paused():
        failures += 1
        return None
    try:
        return int(limiter.storage.incr(item.key_for("khaacho", *key), item.get_expiry(), amount=amount))
    except Exception as exc:  # any storage error (Redis down, timeout): fail open
        _failed(exc)
        return None


def shares_redis_with_queue() -> bool:
    """True when the limiter's storage and Huey's queue are one Redis database (:func:`admit` applies)."""
    queue, storage = huey.storage, limiter.storage
    if huey.immediate or type(queue) is not RedisQueue or not isinstance(storage, RedisStorage):
        return False
    ours, theirs = storage.storage.connection_pool.connection_kwargs, queue.pool.connection_kwargs
    return all(ours.get(k) == theirs.get(k) for k in ("host", "port", "db", "path", "username"))


def admit(item: RateLimitItem, scope: str, tasks: dict[str, list[bytes]]) -> list[int] | None:
    """Count each sender's messages in its ``item`` window and queue the tasks within the limit.

    ``tasks`` maps a sender to the serialized Huey tasks of its new messages, in arrival order;
    returns each sender's count after, or None when the storage is down (then nothing is queued).
    Only when :func:`shares_redis_with_queue`.
    """
    global failures
    if paused():
        failures += 1
        return None
    storage = limiter.storage
    cached = _scripts.get(id(storage))
    if cached is None or cached[0] is not storage:
        cached = _scripts[id(storage)] = (storage, storage.storage.register_script(ADMIT_LUA))
    keys = [huey.storage.queue_key]
    keys += [storage.prefixed_key(item.key_for("khaacho", scope, sender)) for sender in tasks]
    args: list = [item.get_expiry(), item.amount, *(len(queued) for queued in tasks.values())]
    args += [task for queued in tasks.values() for task in queued]
    try:
        return [int(count) for count in cached[1](keys=keys, args=args)]
    except Exception as exc:  # any storage error (Redis down, timeout): fail open
        _failed(exc)
        return None
