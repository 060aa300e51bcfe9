"""Ack latency while the retention cleanup deletes 1,000,000 expired rows from each webhook table.

The webhook tables get ``--rows`` rows each that are past the retention period
(``bench/growth.py``'s fill, 40 days old, messages ``completed``). The project is served as in
``bench/ack.py``; one slice of ``--slice`` seconds is measured before the cleanup, then
``flask webhooks cleanup --days 30`` starts in a subprocess and slices follow back to back until
it exits (at most ``--max-seconds``). Each slice reports req/s, p50/p99, non-2xx and
stored-vs-answered (the new messages must all be kept). Targets: every slice during
the cleanup has p99 <= 100 ms, no non-2xx, nothing lost, and the expired rows are gone.

    .venv/bin/python bench/cleanup_load.py [--rows 1000000] [--slice 10] [--max-seconds 300]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ack  # noqa: E402
from bench.growth import prefill  # noqa: E402

# The column each table's age is read from by the cleanup.
AGE_COLUMNS = {"webhook_messages": "created_at", "webhook_signature_log": "created_at",
               "webhook_performance_metrics": "bucket_start", "webhook_rate_limits": "window_start"}


def expired_left(database_url: str) -> dict[str, int]:
    """Rows older than the 30-day retention still present, per webhook table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table} "
                                    f"WHERE {column} < now() - interval '30 days'").fetchone()[0]
                for table, column in AGE_COLUMNS.items()}


def main() -> int:
    parser = ack.arguments(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired rows in each webhook table")
    parser.add_argument("--slice", type=int, default=10, help="seconds per measured slice")
    parser.add_argument("--max-seconds", type=int, default=300, help="give up on the cleanup after this")
    parser.set_defaults(database="khaacho_bench_cleanup")
    args = parser.parse_args()
    with ack.stores(args) as (env, workdir):
        fill_seconds = prefill(env["DATABASE_URL"], args.rows, age="40 days", spread_seconds=20 * 86400)
        with ack.served("project", args, env, workdir) as url:
            before = ack.measure("project", url, args, env, workdir, "wamid.before-", args.slice)
            started = time.monotonic()
            cleaner = subprocess.Popen(
                [str(ack.BIN / "flask"), "--app", "wsgi", "webhooks", "cleanup", "--days", "30"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            during = []
            try:
                while cleaner.poll() is None and time.monotonic() - started < args.max_seconds:
                    prefix = f"wamid.during{len(during)}-"
                    during.append(ack.measure("project", url, args, env, workdir, prefix, args.slice))
            finally:
                if cleaner.poll() is None:
                    cleaner.terminate()
                output = cleaner.communicate(timeout=30)[0]
            cleanup_seconds = time.monotonic() - started
        left = expired_left(env["DATABASE_URL"])
    print(f"\ncleanup under load: gunicorn -w {args.workers} -k {args.worker_class} "
          f"--threads {args.worker_threads}, wrk -t{args.threads} -c{args.connections}, "
          f"{args.rows:,} expired rows per webhook table "
          f"(filled in {fill_seconds} s)\n")
    print(f"cleanup: exit {cleaner.returncode} after {cleanup_seconds:.1f} s: "
          f"{output.strip().splitlines()[-1:]}")
    print(f"expired rows left per table: {left}\n")
    print("| slice | req/s | p50 ms | p99 ms | max ms | non-2xx | answered | stored | load |"
          " CPU ms/req app+pg+redis+wrk |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in [("before", before)] + [(f"during {i + 1}", r) for i, r in enumerate(during)]:
        print(f"| {name} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
              f"{r['max_us'] / 1000:.1f} | {r['non_2xx']} | {r['answered_2xx']} | {r['stored']} | "
              f"{r['load']:.1f} | {ack.cpu_split(r)} |")
    checks = {
        "the cleanup finished": cleaner.returncode == 0,
        "p99 <= 100 ms in every slice during the cleanup": all(r["p99_us"] <= 100_000 for r in during),
        "zero non-2xx": all(r["non_2xx"] == 0 for r in [before, *during]),
        "every answered message stored": all(r["stored"] >= r["answered_2xx"] for r in [before, *during]),
        "every expired row deleted": not any(left.values()),
    }
    for check, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {check}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
