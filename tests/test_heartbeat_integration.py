"""A real huey_consumer reports in, times its tasks, logs each line once and shows dead when killed."""

from __future__ import annotations

import signal

import pytest

from khaacho.ops import alerts, heartbeat
from tests.test_worker_integration import own_redis, post_meta_batch, stack  # noqa: F401  (fixtures)
from tests.support import wait_for

pytestmark = pytest.mark.integration


def consumers(stack) -> list[dict]:
    with stack.app.app_context():
        return heartbeat.consumers()


def test_killed_consumer_shows_dead_and_raises_the_silent_worker_alert(stack, processes):
    stack.env.update(WORKER_HEARTBEAT_SECONDS="1", WORKER_SILENT_SECONDS="4")
    stack.app.config["WORKER_SILENT_SECONDS"] = 4
    base = processes.gunicorn(stack.env, workers=1)
    consumer = processes.consumer(stack.env, workers=2)
    wait_for(lambda: [c["state"] for c in consumers(stack)] == ["alive"], "the consumer to report in",
             logs=[consumer])

    post_meta_batch(base, ["9779841234567"])
    wait_for(lambda: stack.statuses()["completed"] == 1, "the message completed", logs=[consumer])

    def timed() -> bool:
        with stack.app.app_context():
            timings = heartbeat.timing_percentiles()
        return timings["run"]["count"] >= 1 and timings["wait"]["count"] >= 1

    wait_for(timed, "queue wait and run time of the task recorded", logs=[consumer])
    with stack.app.app_context():
        timings = heartbeat.timing_percentiles()
    assert timings["run"]["p95"] is not None and timings["wait"]["p50"] is not None

    consumer.proc.send_signal(signal.SIGKILL)
    consumer.proc.wait(10)
    wait_for(lambda: [c["state"] for c in consumers(stack)] == ["dead"], "the killed consumer shown dead",
             timeout=30)
    with stack.app.app_context():
        fired = {check.kind for check in alerts.evaluate() if check.firing}
    assert "worker_silent" in fired

    # huey's own handler is gone: each of its lines is written once, in the app's format.
    output = consumer.output()
    assert output.count("Huey consumer started with") == 1
    assert output.count("Periodic tasks are enabled") == 1


def test_stopped_consumer_shows_stopped_not_dead(stack, processes):
    stack.env.update(WORKER_HEARTBEAT_SECONDS="1")
    consumer = processes.consumer(stack.env, workers=2)
    wait_for(lambda: [c["state"] for c in consumers(stack)] == ["alive"], "the consumer to report in",
             logs=[consumer])
    consumer.stop(signal.SIGINT)
    wait_for(lambda: [c["state"] for c in consumers(stack)] == ["stopped"], "the consumer shown stopped",
             logs=[consumer])
