"""Pausing and resuming, as the dashboard and ``flask webhooks pause|resume`` do it."""

from __future__ import annotations

import logging

from khaacho.ops import switches
from khaacho.tasks import release_held_replies, release_queued_messages

log = logging.getLogger(__name__)


def pause(name: str, by: str) -> bool:
    """Pause ``processing`` or ``replies``; True when it was running."""
    changed = switches.set_paused(name, True, by)
    if changed:
        log.warning("%s paused by %s", name, by, extra={"switch": name})
    return changed


def resume(name: str, by: str) -> bool:
    """Resume a switch and queue what it held back (the queued messages, or the held replies, once each)."""
    changed = switches.set_paused(name, False, by)
    if changed:
        log.warning("%s resumed by %s", name, by, extra={"switch": name})
        (release_queued_messages if name == switches.PROCESSING else release_held_replies)()
    return changed
