"""Latency histograms: bucket bounds and percentiles estimated from bucket counts."""

from __future__ import annotations

from collections.abc import Sequence

# Upper bounds (ms) of the latency buckets in ``webhook_performance_metrics.histogram``: the
# histogram is a list of len(LATENCY_BUCKETS_MS) + 1 counts; count i is for requests that took
# at most LATENCY_BUCKETS_MS[i] (and more than the bound before it); the last count is for
# requests slower than the last bound (``ops.rollup.bucket_of`` assigns them in SQL).
LATENCY_BUCKETS_MS: tuple[float, ...] = (10, 25, 50, 100, 250, 500, 1000, 1500, 2500, 5000, 10000)


def histogram_percentile(counts: Sequence[int], q: float, max_ms: float,
                         bounds: Sequence[float] = LATENCY_BUCKETS_MS) -> float | None:
    """Estimate the q-quantile (0..1) from bucket counts with upper ``bounds``, interpolating inside."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if index else 0.0
            upper = bounds[index] if index < len(bounds) else max(max_ms, lower)
            value = lower + (upper - lower) * (rank - seen) / count
            return round(min(value, max_ms) if max_ms > 0 else value, 2)
        seen += count
    return round(max_ms, 2)
