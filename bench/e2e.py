"""End to end: from a message's arrival at the web service to its reply reaching the provider.

Starts, all on loopback: a redis-server of its own, a PostgreSQL database created for the run
(dropped after; migrations and the demo catalog through the real CLI), a stand-in for Meta's send
API that notes when each reply arrives and which inbound message it answers
(``context.message_id``), ``gunicorn wsgi:app`` with 4 sync workers and one
``huey_consumer wsgi.huey`` (the worker service as deployed). After a short warm-up that is not
counted (``--warm-up`` seconds at 20 messages/s, every reply awaited), for each offered rate it
sends signed Meta order messages open-loop (each at its scheduled time, from many senders so no
limit is hit) for ``--seconds``, waits for the replies, and reports the arrival-to-reply latency
(p50/p95/p99), the replies missing, and non-2xx answers.

Targets: at 200 messages/s sustained for 60 s, p95 <= 250 ms; the report names the highest
offered rate at which p95 stays <= 1 s.

Run from the repository root (one at a time; nothing else busy on the machine)::

    .venv/bin/python bench/e2e.py                          # 200 msg/s for 60 s
    .venv/bin/python bench/e2e.py --rates 200,300,400,500 --seconds 30
    .venv/bin/python bench/e2e.py --senders 12000          # every message a new order
    .venv/bin/python bench/e2e.py --timeline 10            # also the p95 of each 10 s (a passing stall)
    .venv/bin/python bench/e2e.py --products 5000          # a wholesaler's catalog, not the demo's 53
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack import cpu_seconds, pids_of, wait_for_app  # noqa: E402
from bench.horizontal import ORDER_TEXTS, RecordingStandIn, Services, signed  # noqa: E402
from bench.refapps import PATH  # noqa: E402
from bench.worker import (  # noqa: E402
    PHONE_ID,
    SECRETS,
    add_products,
    create_database,
    drop_database,
    free_port,
    prepare_schema,
    start_provider,
    start_redis,
)

BIN = Path(sys.executable).parent
SENDERS = 5000  # per rate (--senders): a sender's next message comes SENDERS later and amends its order


class TimingStandIn(RecordingStandIn):
    """The horizontal bench's stand-in, also noting when the first reply to each message arrived."""

    arrived: dict[str, float] = {}

    def received(self, path: str, body: bytes) -> None:
        super().received(path, body)
        if path == f"/{PHONE_ID}/messages":
            answered = json.loads(body).get("context", {}).get("message_id")
            if answered:
                self.arrived.setdefault(answered, time.time())


def offer(port: int, rate: int, seconds: int, prefix: str, threads: int,
          block: int = 0, senders: int = SENDERS) -> tuple[dict[str, float], int]:
    """Send ``rate`` messages a second for ``seconds``, each at its own time; sent times and non-2xx count.

    The senders are the ``block``-th set of ``senders`` numbers: each rate has its own, so every
    rate starts with shops that have no pending order and sees the same mix of new orders and
    follow-ups (which amend the sender's pending order).

    Every request is built and signed before the clock starts (its timestamp is the time it is due),
    and each is written on a fresh connection as raw bytes, its status line read: the load
    generator shares the machine's two cores with the service, so it does as little as it can.
    """
    total = rate * seconds
    start = time.time() + 1.0 + total * 1e-4  # after the requests are built (about 40 us each)
    requests = []
    for i in range(total):
        message_id = f"{prefix}{i:07d}"
        sender = f"97798{block * senders + i % senders:08d}"
        body, signature = signed(message_id, sender, ORDER_TEXTS[i % len(ORDER_TEXTS)], start + i / rate)
        head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n")
        requests.append((message_id, head.encode() + body))
    sent: dict[str, float] = {}
    failures = [0]
    lock = threading.Lock()
    begin = time.monotonic() + (start - time.time())

    def sender(k: int) -> None:
        for i in range(k, total, threads):
            message_id, request = requests[i]
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            when = time.time()
            try:
                ok = _status_line(port, request).startswith(b"HTTP/1.1 200 ")
            except OSError:
                ok = False
            with lock:
                if ok:
                    sent[message_id] = when
                else:
                    failures[0] += 1

    workers = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sent, failures[0]


def _status_line(port: int, request: bytes) -> bytes:
    """Write one request on a fresh connection; the first line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n" not in answer and (chunk := conn.recv(256)):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def replied(sent: dict[str, float], seconds: float) -> bool:
    """Wait up to ``seconds`` for a reply to every sent message; whether all came."""
    deadline = time.monotonic() + seconds
    while any(m not in TimingStandIn.arrived for m in sent):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def warm_up(port: int, args: argparse.Namespace) -> None:
    """A few seconds at a low rate, not counted, so each rate meets running services as in production.

    Started with the load, the consumer would still be importing the app, connecting and reading
    the catalog while the first messages wait: the first seconds of the first rate would measure
    its start-up (about 1 s), not its steady latency.
    """
    sent, failures = offer(port, 20, args.warm_up, "wamid.E2EWARM", 4, block=99)
    if failures or not replied(sent, args.drain):
        raise SystemExit("warm-up: the services did not answer and reply to every message")


def cpu_snapshot(port: int, db_url: str, redis_url: str) -> dict[str, float]:
    """CPU seconds used so far by the web workers, the consumer, their PostgreSQL backends, Redis
    and this process (the load generator and the provider stand-in)."""
    database = db_url.rsplit("/", 1)[1]
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        backends = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))]
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "web": cpu_seconds(pids_of(f"-b 127.0.0.1:{port} ")),
        "consumer": cpu_seconds(pids_of("wsgi.huey")),
        "postgres": cpu_seconds(backends),
        "redis": cpu_seconds(pids_of(f"redis-server 127.0.0.1:{redis_url.rsplit(':', 1)[1].split('/')[0]}")),
        "bench": own.ru_utime + own.ru_stime,
    }


def measure(port: int, rate: int, args: argparse.Namespace, db_url: str, redis_url: str, block: int) -> dict:
    prefix = f"wamid.E2E{rate}x"
    before = cpu_snapshot(port, db_url, redis_url)
    sent, failures = offer(port, rate, args.seconds, prefix, args.threads, block, args.senders)
    replied(sent, args.drain)
    after = cpu_snapshot(port, db_url, redis_url)
    cpu_ms = {k: (after[k] - before[k]) * 1000 / max(len(sent), 1) for k in after}
    arrived = TimingStandIn.arrived
    latency = {m: (arrived[m] - t) * 1000 for m, t in sent.items() if m in arrived}
    latencies = list(latency.values())
    return {"rate": rate, "offered": rate * args.seconds, "acknowledged": len(sent), "non_2xx": failures,
            "replied": len(latencies), "missing": len(sent) - len(latencies),
            "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies, default=float("nan")),
            "cpu_ms": cpu_ms, "timeline": timeline(sent, latency, args.timeline),
            "began": min(sent.values(), default=0.0)}


def timeline(sent: dict[str, float], latency: dict[str, float], seconds: int) -> list[tuple[float, float]]:
    """The p95 of each ``seconds`` of the run, by when the messages were sent (shows a passing stall)."""
    if not sent or seconds <= 0:
        return []
    start = min(sent.values())
    buckets: dict[int, list[float]] = {}
    for message_id, ms in latency.items():
        buckets.setdefault(int((sent[message_id] - start) // seconds), []).append(ms)
    return [(k * seconds, percentile(v, 0.95)) for k, v in sorted(buckets.items())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200", help="offered rates in messages/s, comma-separated")
    parser.add_argument("--seconds", type=int, default=60, help="how long each rate is offered")
    parser.add_argument("--threads", type=int, default=48, help="sending threads")
    parser.add_argument("--senders", type=int, default=SENDERS,
                        help="shops per rate; at least rate x seconds makes every message a new order")
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for the last replies")
    parser.add_argument("--timeline", type=int, default=0, metavar="SECONDS",
                        help="also report the p95 of each SECONDS of every rate")
    parser.add_argument("--warm-up", type=int, default=3, help="seconds at 20 messages/s before measuring")
    parser.add_argument("--products", type=int, default=0,
                        help="active products added to the demo catalog's (a wholesaler's catalog is larger)")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--consumer-threads", type=int, default=4, help="the consumer's workers (-w)")
    parser.add_argument("--consumer-type", choices=("thread", "process"), default="thread",
                        help="the consumer's worker type (-k)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    db_url = create_database(args.pg)
    with tempfile.TemporaryDirectory(prefix="khaacho-e2e-") as tmp:
        workdir = Path(tmp)
        redis, redis_url = start_redis(workdir)
        services = Services(workdir)
        try:
            provider = start_provider(TimingStandIn)
            env = dict(os.environ, **SECRETS, APP_ENV="production", DATABASE_URL=db_url, REDIS_URL=redis_url,
                       WHATSAPP_API_URL=provider, TWILIO_API_URL=provider, TRUSTED_PROXY_COUNT="0",
                       WEBHOOK_RATE_LIMIT_MAX="100000")
            prepare_schema(dict(env))
            add_products(db_url, args.products)
            port = free_port()
            web = services.start("web", [str(BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}", "-w",
                                         str(args.web_workers), "-k", "sync", "--backlog", "2048",
                                         "--log-level", "warning"], env)
            wait_for_app(f"http://127.0.0.1:{port}/healthz", web, args.web_workers, timeout=30)
            services.start("consumer", [str(BIN / "huey_consumer"), "wsgi.huey", "-k", args.consumer_type,
                                        "-w", str(args.consumer_threads), "-q"], env)
            warm_up(port, args)
            results = [measure(port, int(rate), args, db_url, redis_url, block)
                       for block, rate in enumerate(args.rates.split(","))]
        finally:
            services.stop_all()
            redis.terminate()
            redis.wait(10)
            drop_database(args.pg, db_url)

    print(f"each rate: {args.senders} senders; a message from a sender already heard at that rate amends its "
          f"pending order")
    print(f"{'rate/s':>7} {'offered':>8} {'follow-ups':>10} {'acked':>7} {'non2xx':>7} {'missing':>8} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        follow_ups = max(0, r["offered"] - args.senders) / r["offered"]
        print(f"{r['rate']:>7} {r['offered']:>8} {follow_ups:>10.0%} {r['acknowledged']:>7} "
              f"{r['non_2xx']:>7} {r['missing']:>8} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}")
    for r in results:
        if r["timeline"]:
            steps = ", ".join(f"{t:.0f}s {p:.0f}" for t, p in r["timeline"])
            began = time.strftime("%H:%M:%S", time.gmtime(r["began"]))
            print(f"{r['rate']:>7}  p95 ms by when sent, from {began} UTC: {steps}")
    print("CPU ms per message (web + consumer + postgres + redis + this process):")
    for r in results:
        cpu = r["cpu_ms"]
        print(f"{r['rate']:>7}  {sum(cpu.values()):.2f} = " + " + ".join(f"{cpu[k]:.2f}" for k in cpu))
    within = [r["rate"] for r in results if r["p95_ms"] <= 1000 and not r["missing"] and not r["non_2xx"]]
    print(f"highest offered rate with p95 <= 1 s: {max(within) if within else 'none'} messages/s")
    at_200 = next((r for r in results if r["rate"] == 200), None)
    if at_200 is not None:
        print(f"200 msg/s: p95 {at_200['p95_ms']:.1f} ms (target <= 250 ms): "
              f"{'PASS' if at_200['p95_ms'] <= 250 and not at_200['missing'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
