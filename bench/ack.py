"""Ack throughput and latency of signed Meta webhooks: bare vs lean vs the project, side by side.

Each app runs under the same gunicorn configuration (by default render.yaml's: 4 sync workers) on
loopback, against its own PostgreSQL database and its own redis-server; wrk replays pre-signed
webhooks, each a unique text message from a random sender (``bench/ack.lua``). After each run the
rows are counted: every answered message must be stored (stored >= answered; at most
``connections`` more were in flight when wrk stopped). ``load`` is the 1-minute load average after
the run: the figures only mean something on an otherwise idle machine. So each run also reports
the CPU time it cost per request (gunicorn workers, their PostgreSQL backends, redis-server, wrk,
from /proc): unlike req/s that holds when other work shares the cores, and ``cpu-bound req/s`` =
cores / CPU per request is what the stack could answer with both cores to itself. The database is
dropped at the end.

Targets: project ack throughput >= 0.6 x the lean receiver's and p99 <= 50 ms; then >= 0.85 x lean,
>= 1,500 req/s and p99 <= 30 ms; both, no non-2xx and nothing lost. The machine's noise between
runs is about +-10 %: ``--rounds 3`` measures the apps in turn three times and checks each app's
median run.
``bench/growth.py`` and ``bench/cleanup_load.py`` reuse :func:`stores`, :func:`served` and :func:`measure`.

    .venv/bin/python bench/ack.py [--duration 10] [--connections 32] [--threads 2] [--workers 4]
                                  [--worker-class sync|gthread] [--worker-threads 1]
                                  [--apps bare,lean,project] [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.refapps import LEAN_TABLE, PATH  # noqa: E402

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"
BENCH_SECRET_KEY = "bench-secret-key-for-loopback-runs-only-0123456789"  # production wants 32+ bytes
TEXTS = ["5 kg chini, 2 packet wai wai", "चामल २५ केजी", "10 kg chini ra 5 kg dal 🙏",
         "1) basmati 5kg\n2) sunflower oil 2 ltr", "Noodles x 30", "salt - 10 pkt\nsoap - 6 pcs"]
TARGETS = {"bare": "bench.refapps:bare", "lean": "bench.refapps:lean", "project": "wsgi:app"}
MAX_RATE = 8000  # requests per second the request files are sized for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_app(url: str, proc: subprocess.Popen, answers: int, timeout: float = 60) -> None:
    """Until ``answers`` requests in a row are answered; the warm-up then brings up the other workers."""
    deadline, answered = time.monotonic() + timeout, 0
    while answered < answers:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer")
        try:
            urllib.request.urlopen(url, timeout=2)
            answered += 1
        except urllib.error.HTTPError:
            answered += 1  # any HTTP answer means a worker has the app loaded
        except OSError:
            answered = 0
            time.sleep(0.2)


def write_requests(path: Path, prefix: str, count: int) -> None:
    """``count`` signed single-message webhooks, one per line: signature TAB body."""
    now = str(int(time.time()))
    rng = random.Random(prefix)
    with path.open("w") as out:
        for i in range(count):
            payload = {"object": "whatsapp_business_account", "entry": [{"id": "103984562201876", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "9779801000000",
                                 "phone_number_id": "112233445566778"},
                    "messages": [{"from": f"97798{rng.randrange(10**8):08d}", "id": f"{prefix}{i}",
                                  "timestamp": now, "type": "text", "text": {"body": rng.choice(TEXTS)}}],
                }}]}]}
            body = json.dumps(payload, ensure_ascii=False).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            out.write(signature + "\t" + body.decode() + "\n")


def wrk(url: str, requests_file: Path, args: argparse.Namespace, seconds: int) -> dict:
    env = dict(os.environ, ACK_REQUESTS=str(requests_file), ACK_THREADS=str(args.threads))
    out = subprocess.run(
        ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s", "--timeout", "5s",
         "-s", str(ROOT / "bench" / "ack.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def prepare_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    env = dict(os.environ, DATABASE_URL=url, WHATSAPP_APP_SECRET=SECRET)
    env.pop("REDIS_URL", None)
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LEAN_TABLE)
    return url


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def stores(args: argparse.Namespace) -> Iterator[tuple[dict, Path]]:
    """A fresh database and an own redis-server; yields the apps' environment and a work dir.

    The database is dropped at the end.
    """
    database_url = prepare_database(args.pg, args.database)
    redis_port = free_port()
    try:
        with tempfile.TemporaryDirectory(prefix="khaacho-ack-") as tmp:
            redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", tmp],
                                     stdout=subprocess.DEVNULL)
            env = dict(os.environ, APP_ENV="production", DATABASE_URL=database_url,
                       WHATSAPP_APP_SECRET=SECRET, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                       SECRET_KEY=BENCH_SECRET_KEY, WHATSAPP_VERIFY_TOKEN="bench",
                       TWILIO_AUTH_TOKEN="bench-twilio", TRUSTED_PROXY_COUNT="0")
            try:
                yield env, Path(tmp)
            finally:
                redis.terminate()
                redis.wait(10)
    finally:
        drop_database(args.pg, args.database)


def stored(url: str, app: str, prefix: str) -> tuple[int, dict]:
    """Rows stored for ``prefix`` and, for the project, their statuses."""
    with psycopg.connect(url, autocommit=True) as conn:
        if app == "lean":
            return conn.execute("SELECT count(*) FROM lean_messages WHERE message_id LIKE %s",
                                (prefix + "%",)).fetchone()[0], {}
        rows = conn.execute("SELECT status, count(*) FROM webhook_messages WHERE message_id LIKE %s "
                            "GROUP BY status", (prefix + "%",)).fetchall()
        return sum(n for _, n in rows), dict(rows)


@contextlib.contextmanager
def served(app: str, args: argparse.Namespace, env: dict, workdir: Path) -> Iterator[str]:
    """``app`` under gunicorn with the benchmark's options, answering and warmed up; yields its URL."""
    port = free_port()
    warm = f"wamid.warm-{app}-{port}-"
    write_requests(workdir / f"{app}-warm.txt", warm, args.warmup * MAX_RATE)
    with open(workdir / f"{app}.log", "a") as log:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), TARGETS[app], "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
             "-k", args.worker_class, "--threads", str(args.worker_threads), "--backlog", "2048",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        url = f"http://127.0.0.1:{port}{PATH}"
        wait_for_app(url, server, args.workers)
        wrk(url, workdir / f"{app}-warm.txt", args, args.warmup)
        yield url
    finally:
        server.terminate()
        server.wait(15)


def pids_of(cmdline_part: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline_part in cmdline:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(url: str, env: dict) -> dict[str, float]:
    """CPU seconds used so far by the app's gunicorn, its PostgreSQL backends, redis-server and wrk."""
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(env["DATABASE_URL"].replace("+psycopg", ""), autocommit=True) as conn:
        backends = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "app": cpu_seconds(pids_of(f"-b 127.0.0.1:{urlsplit(url).port} ")),
        "postgres": cpu_seconds(backends),
        "redis": cpu_seconds(pids_of(f"redis-server 127.0.0.1:{urlsplit(env['REDIS_URL']).port}")),
        "wrk": children.ru_utime + children.ru_stime,
    }


def measure(app: str, url: str, args: argparse.Namespace, env: dict, workdir: Path, prefix: str,
            seconds: int) -> dict:
    """One wrk run of ``seconds`` with messages ``prefix``N, and what of it was stored."""
    requests_file = workdir / f"{prefix}.txt"
    write_requests(requests_file, prefix, seconds * MAX_RATE)
    before = cpu_snapshot(url, env)
    result = wrk(url, requests_file, args, seconds)
    after = cpu_snapshot(url, env)
    result["cpu_ms"] = {k: (after[k] - before[k]) * 1000 / max(result["requests"], 1) for k in after}
    result["cpu_rps"] = (os.cpu_count() or 1) * 1000 / max(sum(result["cpu_ms"].values()), 1e-6)
    result["app"] = app
    result["load"] = os.getloadavg()[0]
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["answered_2xx"] = result["requests"] - result["non_2xx"]
    if app != "bare":
        result["stored"], result["statuses"] = stored(env["DATABASE_URL"], app, prefix)
    return result


def cpu_split(result: dict) -> str:
    """A run's CPU per request, ``total = app+postgres+redis+wrk`` in ms."""
    cpu = result["cpu_ms"]
    return (f"{sum(cpu.values()):.2f} = {cpu['app']:.2f}+{cpu['postgres']:.2f}+{cpu['redis']:.2f}+"
            f"{cpu['wrk']:.2f}")


def run_app(app: str, args: argparse.Namespace, env: dict, workdir: Path, round_: int = 1) -> dict:
    """Serve ``app`` and measure it once (``round_`` keeps each round's message ids apart)."""
    with served(app, args, env, workdir) as url:
        result = measure(app, url, args, env, workdir, f"wamid.bench{round_}-{app}-", args.duration)
    result["round"] = round_
    return result


def medians(results: list[dict]) -> dict[str, dict]:
    """Each app's median run by req/s (the upper middle one for an even count)."""
    runs: dict[str, list[dict]] = {}
    for r in results:
        runs.setdefault(r["app"], []).append(r)
    return {app: sorted(rs, key=lambda r: r["rps"])[len(rs) // 2] for app, rs in runs.items()}


def report(results: list[dict], args: argparse.Namespace) -> bool:
    """Print the table and the checks (on each app's median run); True when every target holds."""
    by_app = medians(results)
    print(f"\nack benchmark: gunicorn -w {args.workers} -k {args.worker_class} "
          f"--threads {args.worker_threads}, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s on loopback, PostgreSQL + Redis\n")
    print("| round | app | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | answered | stored |"
          " load | CPU ms/req app+pg+redis+wrk | cpu-bound req/s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        print(f"| {r['round']} | {r['app']} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | "
              f"{r['p99_us'] / 1000:.2f} | {r['max_us'] / 1000:.1f} | {r['non_2xx']} | {errors} | "
              f"{r['answered_2xx']} | {r.get('stored', '-')} | {r['load']:.1f} | {cpu_split(r)} | "
              f"{r['cpu_rps']:.0f} |")
    ok = True
    lean, project = by_app.get("lean"), by_app.get("project")
    for r in results:
        run = f"{r['app']} round {r['round']}"
        if r["wrapped"]:
            print(f"! {run}: the request file ran out and wrapped around; raise MAX_RATE")
            ok = False
        if "stored" in r and r["stored"] < r["answered_2xx"]:
            print(f"! {run}: {r['answered_2xx'] - r['stored']} answered messages are missing")
            ok = False
    if args.rounds > 1:
        picked = ", ".join(f"{app} round {r['round']}" for app, r in by_app.items())
        print(f"\nmedian runs by req/s: {picked}")
    if "bare" in by_app and lean:
        print(f"\nlean / bare = {lean['rps'] / by_app['bare']['rps']:.2f}")
    if lean and project:
        ratio = project["rps"] / lean["rps"]
        print(f"project / lean = {ratio:.2f} (cpu-bound: {project['cpu_rps'] / lean['cpu_rps']:.2f})")
        print(f"project statuses: {project['statuses']}")
        project_runs = [r for r in results if r["app"] == "project"]
        checks = {
            "project ack throughput >= 0.6 x lean receiver": ratio >= 0.6,
            "project ack p99 <= 50 ms": project["p99_us"] <= 50_000,
            "project ack throughput >= 0.85 x lean receiver": ratio >= 0.85,
            "project ack throughput >= 1,500 req/s": project["rps"] >= 1500,
            "project ack p99 <= 30 ms": project["p99_us"] <= 30_000,
            "project zero non-2xx (every run)": all(r["non_2xx"] == 0 for r in project_runs),
            "every answered message stored (every run)":
                all(r["stored"] >= r["answered_2xx"] for r in project_runs),
        }
        for check, passed in checks.items():
            print(f"{'ok  ' if passed else 'FAIL'} {check}")
        ok = ok and all(checks.values())
    return ok


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every ack-based benchmark takes."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per app")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    # The defaults are render.yaml's web service.
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--database", default="khaacho_bench_ack")
    return parser


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--apps", default="bare,lean,project")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the apps in turn this many times; the checks use each app's median run")
    args = parser.parse_args()
    with stores(args) as (env, workdir):
        results = [run_app(app, args, env, workdir, round_)
                   for round_ in range(1, args.rounds + 1) for app in args.apps.split(",")]
    return 0 if report(results, args) else 1


if __name__ == "__main__":
    sys.exit(main())
