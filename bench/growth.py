"""Ack throughput as the history grows: empty tables, then 1,000,000 rows in each webhook table.

The project is measured as in ``bench/ack.py`` (same gunicorn and wrk options) on empty tables;
then gunicorn is stopped, ``webhook_messages``, ``webhook_signature_log``,
``webhook_performance_metrics`` and ``webhook_rate_limits`` get ``--rows`` rows each (one
``INSERT … SELECT generate_series`` per table, spread over the retention period, then
``VACUUM ANALYZE`` and a checkpoint so the fill's writes do not land in the measured run), and
the project is measured again. Target: ack throughput with the tables filled >= 0.9 x with them empty.

    .venv/bin/python bench/growth.py [--rows 1000000] [--duration 10] [--connections 32] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ack  # noqa: E402
from khaacho.stats import LATENCY_BUCKETS_MS  # noqa: E402

# The rows are ``age`` old give or take ``spread`` (both SQL intervals), one every few seconds.
FILL = {
    "webhook_messages": """
        INSERT INTO webhook_messages (message_id, webhook_source, phone_number, sender_id, message_type,
            message_text, payload, status, response_time_ms, duplicate_count, message_timestamp,
            first_received_at, attempts, error_count, processed_at, updated_at, created_at)
        SELECT 'wamid.fill-' || i, 'whatsapp', '+97798' || lpad((i %% 50000)::text, 8, '0'),
            '+97798' || lpad((i %% 50000)::text, 8, '0'), 'text', '5 kg chini, 2 packet wai wai',
            json_build_object('id', 'wamid.fill-' || i, 'type', 'text',
                              'text', json_build_object('body', '5 kg chini, 2 packet wai wai')),
            'completed', 4.2, 0, t, t, 1, 0, t, t, t
        FROM (SELECT i, now() - %(age)s::interval - (i %% %(spread)s) * interval '1 second' AS t
              FROM generate_series(1, %(rows)s) AS i) AS s
    """,
    "webhook_signature_log": """
        INSERT INTO webhook_signature_log (webhook_source, endpoint, is_valid, reason, client_ip,
            request_count, last_seen_at, created_at)
        SELECT 'whatsapp', '/api/v1/whatsapp-hardened/webhook', true, NULL,
            '31.13.' || (i %% 250) || '.' || (i %% 200), 1, t, t
        FROM (SELECT i, now() - %(age)s::interval - (i %% %(spread)s) * interval '1 second' AS t
              FROM generate_series(1, %(rows)s) AS i) AS s
    """,
    "webhook_performance_metrics": """
        INSERT INTO webhook_performance_metrics (endpoint_path, webhook_source, bucket_start,
            request_count, success_count, total_ms, max_ms, histogram, created_at)
        SELECT '/api/v1/whatsapp-hardened/webhook', 'whatsapp', date_trunc('minute', t), 100, 100,
            420.0, 30.0, %(histogram)s::jsonb, t
        FROM (SELECT i, now() - %(age)s::interval - (i %% %(spread)s) * interval '1 second' AS t
              FROM generate_series(1, %(rows)s) AS i) AS s
    """,
    "webhook_rate_limits": """
        INSERT INTO webhook_rate_limits (phone_number, window_start, request_count, blocked_count, updated_at)
        SELECT '+97798' || lpad(i::text, 8, '0'), date_trunc('hour', t), 120, 20, t
        FROM (SELECT i, now() - %(age)s::interval - (i %% %(spread)s) * interval '1 second' AS t
              FROM generate_series(1, %(rows)s) AS i) AS s
    """,
}


def prefill(database_url: str, rows: int, age: str = "0 days", spread_seconds: int = 29 * 86400) -> dict:
    """``rows`` rows in each webhook table, ``age`` old, spread over ``spread_seconds``; time per table."""
    histogram = json.dumps([100] + [0] * len(LATENCY_BUCKETS_MS))  # all 100 requests in the first bucket
    params = {"rows": rows, "age": age, "spread": spread_seconds, "histogram": histogram}
    seconds = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table, sql in FILL.items():
            started = time.monotonic()
            conn.execute(sql, params)
            conn.execute(f"VACUUM ANALYZE {table}")
            seconds[table] = round(time.monotonic() - started, 1)
        conn.execute("CHECKPOINT")
    return seconds


def main() -> int:
    parser = ack.arguments(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows added to each webhook table")
    parser.set_defaults(database="khaacho_bench_growth")
    args = parser.parse_args()
    with ack.stores(args) as (env, workdir):
        with ack.served("project", args, env, workdir) as url:
            empty = ack.measure("project", url, args, env, workdir, "wamid.empty-", args.duration)
        fill_seconds = prefill(env["DATABASE_URL"], args.rows)
        with ack.served("project", args, env, workdir) as url:
            full = ack.measure("project", url, args, env, workdir, "wamid.full-", args.duration)
    return 0 if report(empty, full, fill_seconds, args) else 1


def report(empty: dict, full: dict, fill_seconds: dict, args: argparse.Namespace) -> bool:
    """Print both runs and the ratio; True when the target holds and nothing was lost."""
    print(f"\ngrowth benchmark: gunicorn -w {args.workers} -k {args.worker_class} "
          f"--threads {args.worker_threads}, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
          f"{args.rows:,} rows per webhook table (filled in {fill_seconds} s)\n")
    print("| tables | req/s | p50 ms | p99 ms | max ms | non-2xx | answered | stored | load |"
          " CPU ms/req app+pg+redis+wrk |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in (("empty", empty), (f"{args.rows:,} rows", full)):
        print(f"| {name} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
              f"{r['max_us'] / 1000:.1f} | {r['non_2xx']} | {r['answered_2xx']} | {r['stored']} | "
              f"{r['load']:.1f} | {ack.cpu_split(r)} |")
    ratio = full["rps"] / empty["rps"]
    checks = {
        "filled >= 0.9 x empty throughput": ratio >= 0.9,
        "zero non-2xx": empty["non_2xx"] == full["non_2xx"] == 0,
        "every answered message stored": all(r["stored"] >= r["answered_2xx"] for r in (empty, full)),
    }
    cpu_ratio = sum(empty["cpu_ms"].values()) / sum(full["cpu_ms"].values())
    print(f"\nfilled / empty = {ratio:.2f} (by CPU per request: {cpu_ratio:.2f})")
    for check, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {check}")
    return all(checks.values())


if __name__ == "__main__":
    sys.exit(main())
