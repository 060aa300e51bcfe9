"""``GET /metrics``: the Prometheus text format, for the whole deployment, from shared tables.

A custom collector reads :mod:`khaacho.ops.rollup`'s totals and snapshots and a few live
counts; prometheus_client's multiprocess mode would only sum the workers of one machine.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from khaacho.auth.decorators import stats_auth_required
from khaacho.models import MESSAGE_STATUSES, SOURCES, utcnow
from khaacho.ops import alerts, heartbeat, rollup, switches

bp = Blueprint("metrics", __name__)


class DeploymentCollector(Collector):
    """Every series, read from the database at collection time."""

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of one scrape."""
        now = utcnow()
        yield from self._requests()
        counts, taken = rollup.snapshots()
        live, oldest = rollup.live_queue(now)
        messages = GaugeMetricFamily("khaacho_messages", "Stored webhook messages by status.",
                                     labels=["status"])
        for status in MESSAGE_STATUSES:
            messages.add_metric([status], live.get(status, counts["messages"].get(status, 0.0)))
        yield messages
        yield GaugeMetricFamily("khaacho_queue_oldest_seconds",
                                "Age of the oldest queued message (0 when none).", value=oldest or 0.0)
        orders = GaugeMetricFamily("khaacho_orders", "Orders by status.", labels=["status"])
        for status, value in sorted(counts["orders"].items()):
            orders.add_metric([status], value)
        yield orders
        # A gauge under the contract's name: a reply changes status (sending, sent, failed) and the
        # cleanup removes old ones, so the figure can fall, which a counter must never do.
        replies = GaugeMetricFamily("khaacho_replies_total", "Stored replies by kind and status.",
                                    labels=["kind", "status"])
        for label, value in sorted(counts["replies"].items()):
            kind, status = label.split("/", 1)
            replies.add_metric([kind, status], value)
        yield replies
        age = (now - taken).total_seconds() if taken else float("nan")
        yield GaugeMetricFamily("khaacho_counts_age_seconds",
                                "Age of the status counts (messages, orders, replies) taken each minute.",
                                value=age)
        yield from self._operations(now)

    def _requests(self) -> Iterator[Metric]:
        totals = rollup.request_totals()
        requests = CounterMetricFamily("khaacho_webhook_requests", "Webhook requests by source and outcome.",
                                       labels=["source", "outcome"])
        for source in SOURCES:
            for outcome in ("accepted", "rejected"):
                requests.add_metric([source, outcome], sum(
                    n for (s, o, _b), (n, _ms) in totals.items() if s == source and o == outcome))
        yield requests
        ack = HistogramMetricFamily("khaacho_webhook_ack_seconds",
                                    "Time from receiving an accepted webhook request to its store "
                                    "(the write itself excluded).",
                                    labels=["source"])
        for source in SOURCES:
            counts = [0] * (len(rollup.ACK_BUCKETS_MS) + 1)
            total_ms = 0.0
            for (s, o, b), (n, ms) in totals.items():
                if s == source and o == "accepted" and b != rollup.UNTIMED:
                    counts[b] += n
                    total_ms += ms
            cumulative, buckets = 0, []
            for bound, n in zip([*rollup.ACK_BUCKETS_MS, float("inf")], counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else f"{bound / 1000:g}", cumulative))
            ack.add_metric([source], buckets, total_ms / 1000.0)
        yield ack

    def _operations(self, now) -> Iterator[Metric]:
        paused = GaugeMetricFamily("khaacho_paused", "1 while a pause switch is on.", labels=["switch"])
        for name, row in switches.states().items():
            paused.add_metric([name], 1.0 if row is not None and row.paused else 0.0)
        yield paused
        firing = {alert.kind for alert in alerts.active()}
        active = GaugeMetricFamily("khaacho_alert_active", "1 while an alert of the kind is open.",
                                   labels=["kind"])
        for kind in alerts.TITLES:
            active.add_metric([kind], 1.0 if kind in firing else 0.0)
        yield active
        states = [c["state"] for c in heartbeat.consumers(now)]
        workers = GaugeMetricFamily("khaacho_consumers", "Consumers seen in the last day by state.",
                                    labels=["state"])
        for state in ("alive", "dead", "stopped"):
            workers.add_metric([state], states.count(state))
        yield workers


@bp.get("/metrics")
@stats_auth_required
def metrics() -> Response:
    """The deployment's metrics in the Prometheus text format (0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector())
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4,
                    headers={"Cache-Control": "no-store"})
