"""Memory of gunicorn workers over 200,000 signed Meta webhooks: RSS must stay flat.

Starts the project under gunicorn (sync workers by default, as in render.yaml; ``--max-requests
0`` so no worker is recycled) on a PostgreSQL database created for the run and dropped after, and
on a redis-server of its own on a free loopback port. A warm-up of a few thousand requests loads
everything a worker loads lazily; then each worker's RSS (``VmRSS`` in ``/proc/<pid>/status``; the
workers are the gunicorn master's children) is the baseline. The measured load is sent in chunks
with wrk and ``bench/ack.lua`` (unique message ids, random senders; request files built by
``bench/ack.py``), and RSS is sampled after every chunk. Between chunks the script waits while
another wrk is running or the 1-minute load average is above ``--max-load``, so it does not pile
onto another benchmark.

    .venv/bin/python bench/memory.py [--requests 200000] [--warmup 5000] [--chunks 8] [--workers 2]
                                     [--worker-class sync|gthread] [--worker-threads 1]
                                     [--connections 8] [--threads 1]

With ``--trace`` the workers run ``bench.memory:app``: the project with ``tracemalloc`` started
in each worker and a snapshot taken on ``SIGUSR2`` (after the warm-up and at the end), and the
largest growths between the two are printed per worker (slow: use a few thousand requests).
Target: each worker's RSS grows by less than 20 MB over 200,000 requests.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.ack import BENCH_SECRET_KEY, SECRET, wait_for_app, write_requests, wrk  # noqa: E402
from bench.refapps import PATH  # noqa: E402
from bench.worker import create_database, drop_database, free_port, prepare_schema, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_MB = 20.0
TRACE_DIR_ENV = "KHAACHO_BENCH_TRACE_DIR"


def _tracing_app():  # noqa: ANN202  (the WSGI app, only built under --trace)
    """The project's app, plus a SIGUSR2 handler that dumps a tracemalloc snapshot of this worker."""
    import tracemalloc

    tracemalloc.start(10)
    directory = Path(os.environ[TRACE_DIR_ENV])
    taken = [0]

    def dump(_signum: int, _frame: object) -> None:
        taken[0] += 1
        partial = directory / f"{os.getpid()}-{taken[0]}.partial"
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(partial.with_suffix(".snapshot"))

    signal.signal(signal.SIGUSR2, dump)
    from wsgi import app as project

    return project


if os.environ.get(TRACE_DIR_ENV):
    app = _tracing_app()


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's child processes (its workers)."""
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return sorted(pids)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def other_load_generators() -> int:
    """wrk processes running on this machine that this script did not start (another benchmark)."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "wrk":
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                count += ppid != os.getpid()
        except (OSError, ValueError):
            continue
    return count


def wait_for_quiet(max_load: float, limit: float = 180) -> None:
    """Wait (at most ``limit`` s) while another wrk runs or the 1-minute load is above ``max_load``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        load, others = os.getloadavg()[0], other_load_generators()
        if load <= max_load and not others:
            return
        print(f"  load {load:.1f} (max {max_load}), other wrk processes {others}: waiting", flush=True)
        time.sleep(5)


def send(url: str, workdir: Path, name: str, count: int, rate: float, args: argparse.Namespace) -> dict:
    """About ``count`` unique signed webhooks through wrk (the file is sized 3x the expected rate)."""
    seconds = max(1, round(count / rate))
    path = workdir / f"{name}.txt"
    write_requests(path, f"wamid.mem-{name}-", max(count, int(seconds * rate * 3)))
    result = wrk(url, path, args, seconds)
    path.unlink()
    if result["wrapped"]:
        raise RuntimeError(f"{name}: the request file wrapped around; messages were sent twice")
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def take_snapshots(workdir: Path, pids: list[int], number: int) -> None:
    """Have each worker dump its ``number``-th tracemalloc snapshot; wait (at most 2 min) for the files."""
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 120
    while len(list(workdir.glob(f"*-{number}.snapshot"))) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.5)


def snapshot_diff(trace_dir: Path, pids: list[int], top: int = 15) -> None:
    """Print the largest allocation growths between each worker's first and last snapshot."""
    import tracemalloc

    for pid in pids:
        files = sorted(trace_dir.glob(f"{pid}-*.snapshot"), key=lambda p: int(p.stem.split("-")[1]))
        if len(files) < 2:
            print(f"worker {pid}: fewer than two snapshots")
            continue
        first, last = (tracemalloc.Snapshot.load(str(f)) for f in (files[0], files[-1]))
        stats = last.compare_to(first, "traceback")
        print(f"\nworker {pid}: total traced growth "
              f"{sum(s.size_diff for s in stats) / 1024:.0f} KiB; largest:")
        for stat in stats[:top]:
            print(f"  {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
            for frame in stat.traceback.format(limit=4):
                print(f"    {frame}")


def stored(database_url: str) -> int:
    """Messages of the measured chunks in ``webhook_messages``."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM webhook_messages WHERE message_id LIKE 'wamid.mem-c%'"
                            ).fetchone()[0]


def run(args: argparse.Namespace, env: dict, workdir: Path) -> tuple[list[int], dict[int, list[float]], int]:
    """Start gunicorn, warm up, send the load in chunks; worker pids, RSS samples, requests answered."""
    port = free_port()
    target = "wsgi:app"
    if args.trace:
        target = "bench.memory:app"
        env = dict(env, **{TRACE_DIR_ENV: str(workdir)})
    log = open(workdir / "gunicorn.log", "w")  # noqa: SIM115  (closed with the process)
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), target, "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
         "-k", args.worker_class, "--threads", str(args.worker_threads), "--max-requests", "0",
         "--backlog", "2048", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}{PATH}"
        wait_for_app(url, server, args.workers)
        warm = send(url, workdir, "warm", args.warmup, 500, args)
        pids = worker_pids(server.pid)
        print(f"gunicorn {server.pid}, workers {pids}; warm-up {warm['requests']} requests "
              f"at {warm['rps']:.0f} req/s", flush=True)
        rate = warm["rps"]
        if args.trace:
            take_snapshots(workdir, pids, 1)
        samples = {pid: [rss_mb(pid)] for pid in pids}
        print(f"{'requests':>9} | " + " | ".join(f"worker {pid} MiB" for pid in pids) + " | req/s | load",
              flush=True)
        print(f"{0:>9} | " + " | ".join(f"{samples[pid][0]:>15.1f}" for pid in pids), flush=True)
        sent, chunk = 0, 0
        while sent < args.requests:
            wait_for_quiet(args.max_load)
            chunk += 1
            result = send(url, workdir, f"c{chunk}", min(args.requests - sent, args.requests // args.chunks),
                          rate, args)
            if result["non_2xx"] or result["timeouts"]:
                raise RuntimeError(f"chunk {chunk}: {result}")
            sent += result["requests"]
            rate = result["rps"]
            for pid in pids:
                samples[pid].append(rss_mb(pid))
            print(f"{sent:>9} | " + " | ".join(f"{samples[pid][-1]:>15.1f}" for pid in pids)
                  + f" | {rate:>5.0f} | {os.getloadavg()[0]:.1f}", flush=True)
        if worker_pids(server.pid) != pids:
            raise RuntimeError("a worker was replaced during the run: the growth figures are void")
        if args.trace:
            take_snapshots(workdir, pids, 2)
            snapshot_diff(workdir, pids)
        return pids, samples, sent
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000, help="measured requests (about)")
    parser.add_argument("--warmup", type=int, default=5000, help="requests before the baseline (about)")
    parser.add_argument("--chunks", type=int, default=8, help="RSS samples during the measured load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--max-load", type=float, default=4.0, help="wait between chunks while load is above")
    parser.add_argument("--trace", action="store_true", help="tracemalloc snapshot diff per worker")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_ADMIN_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    wait_for_quiet(args.max_load)
    database_url = create_database(args.pg)
    with tempfile.TemporaryDirectory(prefix="khaacho-memory-") as tmp:
        workdir = Path(tmp)
        redis, redis_url = start_redis(workdir)
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
        env.update(APP_ENV="production", DATABASE_URL=database_url, REDIS_URL=redis_url,
                   WHATSAPP_APP_SECRET=SECRET, SECRET_KEY=BENCH_SECRET_KEY, WHATSAPP_VERIFY_TOKEN="bench",
                   TWILIO_AUTH_TOKEN="bench-twilio", TRUSTED_PROXY_COUNT="0")
        try:
            prepare_schema(env)
            pids, samples, sent = run(args, env, workdir)
            rows = stored(database_url)
        finally:
            redis.terminate()
            redis.wait(10)
            drop_database(args.pg, database_url)

    print(f"\nmemory: gunicorn -w {args.workers} -k {args.worker_class} --threads {args.worker_threads} "
          f"--max-requests 0, {sent} measured requests "
          f"(after about {args.warmup} warm-up), wrk -t{args.threads} -c{args.connections}, "
          "PostgreSQL + Redis\n")
    print("| worker | RSS after warm-up MiB | RSS at end MiB | growth MiB | max over baseline MiB |")
    print("|---|---:|---:|---:|---:|")
    ok = True
    for pid in pids:
        series = samples[pid]
        growth = series[-1] - series[0]
        ok = ok and growth < TARGET_MB
        peak = max(series) - series[0]
        print(f"| {pid} | {series[0]:.1f} | {series[-1]:.1f} | {growth:+.1f} | {peak:+.1f} |")
    print(f"\n{'ok  ' if ok else 'FAIL'} every worker grows < {TARGET_MB:.0f} MB over {sent} requests")
    print(f"{'ok  ' if rows >= sent else 'FAIL'} every answered message stored "
          f"({rows} rows for {sent} answers)")
    ok = ok and rows >= sent
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
