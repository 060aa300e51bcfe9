"""Two web instances and two workers on one PostgreSQL + Redis: no duplicates, no double replies, one limit.

Starts, all on loopback: a redis-server of its own on a free port, a PostgreSQL database created
for the run (dropped after), a stand-in for Meta's send API that counts the replies per inbound
message (``context.message_id``), two gunicorn masters (``wsgi:app``, 2 sync workers each) on two
ports, and two ``huey_consumer wsgi.huey`` processes (the second with ``-n``), each running an
outbox relay, so two relays claim the stored messages. Signed Meta webhooks alternate between the
two web instances:

(a) one message delivered 10 times to each instance at once: one row with ``duplicate_count`` 19,
    one order, one reply;
(b) 300 distinct order messages from 30 senders, 10 each (``WEBHOOK_RATE_LIMIT_MAX=10``, so every
    message is inside a limit counted across both instances): 300 rows and replies, no message
    answered twice, neither at the stand-in nor in ``outbound_messages``; 30 orders, because a
    sender's later order texts amend its pending order;
(c) the web instances and consumers restarted with ``WEBHOOK_RATE_LIMIT_MAX=5``: one new sender sends
    12 messages alternating instances: exactly 5 processed and 7 ``rate_limited`` (the limit is
    counted by both relays in one Redis).

Prints a PASS/FAIL table and exits 1 on any FAIL. Run from the repository root::

    .venv/bin/python bench/horizontal.py
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.ack import wait_for_app  # noqa: E402
from bench.refapps import PATH  # noqa: E402
from bench.worker import (  # noqa: E402
    PHONE_ID,
    SECRETS,
    ProviderStandIn,
    create_database,
    drop_database,
    free_port,
    prepare_schema,
    start_provider,
    start_redis,
)

BIN = Path(sys.executable).parent
DEADLINE_SECONDS = 110
ORDER_TEXTS = [case["text"] for case in json.loads((ROOT / "tests" / "data" / "orders.json").read_text())
               if any(item["sku"] for item in case["items"])]


class RecordingStandIn(ProviderStandIn):
    """The worker bench's stand-in, also counting Meta replies per inbound message they answer."""

    replies: Counter[str] = Counter()

    def received(self, path: str, body: bytes) -> None:
        if path == f"/{PHONE_ID}/messages":
            self.replies[json.loads(body).get("context", {}).get("message_id")] += 1


def signed(message_id: str, sender: str, text: str, sent_at: float | None = None) -> tuple[bytes, str]:
    """A Meta webhook with one text message (sent now, or at ``sent_at``), and its ``X-Hub-Signature-256``."""
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "103984562201876", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "9779801000000", "phone_number_id": PHONE_ID},
            "messages": [{"from": sender, "id": message_id, "timestamp": str(int(sent_at or time.time())),
                          "type": "text", "text": {"body": text}}],
        }}]}]}
    body = json.dumps(payload, ensure_ascii=False).encode()
    secret = SECRETS["WHATSAPP_APP_SECRET"].encode()
    return body, "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post(base: str, message: tuple[bytes, str]) -> int:
    """POST one signed webhook; the HTTP status."""
    body, signature = message
    request = urllib.request.Request(base + PATH, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Services:
    """The child processes of the run; stopped in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def web(self, name: str, env: dict) -> str:
        port = free_port()
        proc = self.start(name, [str(BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", "2",
                                 "-k", "sync", "--graceful-timeout", "3", "--log-level", "warning"], env)
        base = f"http://127.0.0.1:{port}"
        wait_for_app(base + "/healthz", proc, 2, timeout=30)
        return base

    def stop(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGINT if "huey_consumer" in str(proc.args[0]) else signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)


def wait_settled(db_url: str, prefix: str, count: int, deadline: float) -> dict[str, int]:
    """Poll until ``count`` messages of ``prefix`` left queued/processing; their statuses."""
    while True:
        with psycopg.connect(db_url) as conn:
            statuses = dict(conn.execute(
                "SELECT status, count(*) FROM webhook_messages WHERE message_id LIKE %s GROUP BY status",
                (prefix + "%",)).fetchall())
        settled = sum(n for s, n in statuses.items() if s not in ("queued", "processing"))
        if settled >= count or time.monotonic() > deadline:
            time.sleep(0.5)  # a late second reply, were there one, would land now
            return statuses


def facts(db_url: str, prefix: str) -> dict:
    """Rows, duplicates, orders and replies stored for messages of ``prefix``."""
    with psycopg.connect(db_url) as conn:
        rows, duplicates, orders, replies, most_replies = conn.execute(
            "SELECT count(*), coalesce(sum(m.duplicate_count), 0),"
            " (SELECT count(*) FROM orders o JOIN webhook_messages w ON w.id = o.webhook_message_id"
            "   WHERE w.message_id LIKE %(p)s),"
            " (SELECT count(*) FROM outbound_messages r"
            "   JOIN webhook_messages w ON w.id = r.webhook_message_id WHERE w.message_id LIKE %(p)s),"
            " (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM outbound_messages r"
            "   JOIN webhook_messages w ON w.id = r.webhook_message_id WHERE w.message_id LIKE %(p)s"
            "   GROUP BY r.webhook_message_id) AS per_message)"
            " FROM webhook_messages m WHERE m.message_id LIKE %(p)s", {"p": prefix + "%"}).fetchone()
    stand_in = {k: n for k, n in RecordingStandIn.replies.items() if k and k.startswith(prefix)}
    return {"rows": rows, "duplicates": duplicates, "orders": orders, "outbound": replies,
            "outbound_max_per_message": most_replies, "stand_in": sum(stand_in.values()),
            "stand_in_max_per_message": max(stand_in.values(), default=0)}


def case_a(webs: list[str], db_url: str, deadline: float) -> list[tuple]:
    """The same message 10 times to each instance at once."""
    message = signed("wamid.HZ-A-1", "9779812000001", ORDER_TEXTS[0])
    barrier = threading.Barrier(20)

    def deliver(i: int) -> int:
        barrier.wait(10)
        return post(webs[i % 2], message)

    with ThreadPoolExecutor(20) as pool:
        answers = Counter(pool.map(deliver, range(20)))
    statuses = wait_settled(db_url, "wamid.HZ-A-", 1, deadline)
    got = facts(db_url, "wamid.HZ-A-")
    return [("a", "answers 200", 20, answers[200]), ("a", "rows", 1, got["rows"]),
            ("a", "duplicate_count", 19, got["duplicates"]),
            ("a", "completed", 1, statuses.get("completed", 0)),
            ("a", "orders", 1, got["orders"]), ("a", "replies in outbound_messages", 1, got["outbound"]),
            ("a", "replies at the stand-in", 1, got["stand_in"])]


def case_b(webs: list[str], db_url: str, deadline: float) -> list[tuple]:
    """300 distinct order messages from 30 senders, alternating instances."""
    messages = [signed(f"wamid.HZ-B-{i}", f"97798130000{i % 30:02d}", ORDER_TEXTS[i % len(ORDER_TEXTS)])
                for i in range(300)]
    with ThreadPoolExecutor(8) as pool:
        answers = Counter(pool.map(lambda i: post(webs[i % 2], messages[i]), range(300)))
    statuses = wait_settled(db_url, "wamid.HZ-B-", 300, deadline)
    got = facts(db_url, "wamid.HZ-B-")
    return [("b", "answers 200", 300, answers[200]), ("b", "rows", 300, got["rows"]),
            ("b", "completed", 300, statuses.get("completed", 0)),
            ("b", "orders (one per sender)", 30, got["orders"]),
            ("b", "replies in outbound_messages", 300, got["outbound"]),
            ("b", "most replies to one message (outbound_messages)", 1, got["outbound_max_per_message"]),
            ("b", "replies at the stand-in", 300, got["stand_in"]),
            ("b", "most replies to one message (stand-in)", 1, got["stand_in_max_per_message"])]


def case_c(webs: list[str], db_url: str, deadline: float) -> list[tuple]:
    """One sender, 12 messages alternating instances, limit 5 per window."""
    answers = Counter(post(webs[i % 2], signed(f"wamid.HZ-C-{i}", "9779814000001", ORDER_TEXTS[i]))
                      for i in range(12))
    statuses = wait_settled(db_url, "wamid.HZ-C-", 12, deadline)
    got = facts(db_url, "wamid.HZ-C-")
    with psycopg.connect(db_url) as conn:
        blocked = conn.execute("SELECT coalesce(sum(blocked_count), 0) FROM webhook_rate_limits"
                               " WHERE phone_number = '+9779814000001'").fetchone()[0]
    return [("c", "answers 200", 12, answers[200]), ("c", "completed", 5, statuses.get("completed", 0)),
            ("c", "rate_limited", 7, statuses.get("rate_limited", 0)),
            ("c", "blocked in webhook_rate_limits", 7, blocked),
            ("c", "orders (one per sender)", 1, got["orders"]),
            ("c", "replies at the stand-in", 5, got["stand_in"])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_ADMIN_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS

    provider = start_provider(RecordingStandIn)
    workdir = Path(tempfile.mkdtemp(prefix="khaacho-horizontal-"))
    redis, redis_url = start_redis(workdir)
    db_url = create_database(args.pg)
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(SECRETS)
    env.update({"APP_ENV": "production", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                "WHATSAPP_API_URL": provider, "TWILIO_API_URL": provider, "TRUSTED_PROXY_COUNT": "0",
                "PYTHONUNBUFFERED": "1", "WEBHOOK_RATE_LIMIT_MAX": "10", "WEBHOOK_RATE_LIMIT_WINDOW": "60"})
    services = Services(workdir)
    results: list[tuple] = []
    try:
        prepare_schema(env)
        consumer = [str(BIN / "huey_consumer"), "wsgi.huey", "-k", "thread", "-w", "4", "-q"]
        services.start("consumer-1", consumer, env)
        services.start("consumer-2", [*consumer, "-n"], env)
        webs = [services.web("web-1", env), services.web("web-2", env)]
        results += case_a(webs, db_url, deadline)
        results += case_b(webs, db_url, deadline)
        for proc in list(services.started):  # the relays in the consumers apply the limit
            services.stop(proc)
        limited = dict(env, WEBHOOK_RATE_LIMIT_MAX="5")
        services.start("consumer-1", consumer, limited)
        services.start("consumer-2", [*consumer, "-n"], limited)
        webs = [services.web("web-1", limited), services.web("web-2", limited)]
        results += case_c(webs, db_url, deadline)
    finally:
        services.stop_all()
        redis.terminate()
        redis.wait(10)
        drop_database(args.pg, db_url)
        logs = {p.name: p.read_text(errors="replace") for p in workdir.glob("*.log")}
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    print("\nhorizontal: 2 gunicorn masters x 2 sync workers, 2 huey_consumer (-k thread -w 4, one with -n),"
          " one PostgreSQL database, one redis-server, Meta stand-in; all on loopback\n")
    print("| case | check | expected | got | result |")
    print("|---|---|---:|---:|---|")
    ok = True
    for case, check, expected, got in results:
        passed = expected == got
        ok = ok and passed
        print(f"| {case} | {check} | {expected} | {got} | {'PASS' if passed else 'FAIL'} |")
    in_time = elapsed < 120
    print(f"\n{elapsed:.1f} s in all ({'PASS' if in_time else 'FAIL'}: < 120 s)")
    if not ok:
        for name, text in sorted(logs.items()):
            tail = "\n".join(text.splitlines()[-15:])
            print(f"\n--- {name} (last lines) ---\n{tail}")
    return 0 if ok and in_time else 1


if __name__ == "__main__":
    sys.exit(main())
