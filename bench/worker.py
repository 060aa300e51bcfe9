"""Drain queued order messages, each confirmed by a tap, with real huey_consumer processes.

For each consumer configuration (``PxT``: P huey_consumer processes with T threads each; the
second and later run with ``-n`` so periodic tasks run once), the bench inserts N queued order
messages from N shops (half Meta, half Twilio), enqueues N ``process_message`` tasks, starts
the consumers and, as each confirmation is sent, has its shop tap Confirm: a tap message
(``order:<id>:v1:confirm``) is stored ``queued`` and announced to the consumers' relay, as
intake does. It times until every order is ``confirmed`` and all 2N messages are
``completed``. With ``--no-taps`` it drains the texts of tests/data/orders.json alone, as
before. Replies go to a keep-alive HTTP stand-in for Meta and Twilio on loopback.
Redis is a redis-server of the bench's own on a free loopback port; the PostgreSQL database
is created for the run and dropped after.

Run from the repository root::

    .venv/bin/python bench/worker.py                     # 10,000 messages; 1x4, 2x4, 2x8
    .venv/bin/python bench/worker.py --messages 2000 --configs 1x2,2x2
    .venv/bin/python bench/worker.py --messages 10000 --configs 2x4   # the issue's target: < 120 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PHONE_ID = "112233445566778"
ACCOUNT_SID = "AC00000000000000000000000000000000"
SECRETS = {
    "WHATSAPP_APP_SECRET": "bench-app-secret", "WHATSAPP_VERIFY_TOKEN": "bench-verify",
    "WHATSAPP_ACCESS_TOKEN": "bench-token", "WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "bench-twilio-token",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
    "SECRET_KEY": "bench-secret-key-for-loopback-runs-only-0123456789",
}


class ProviderStandIn(asyncio.Protocol):
    """Answers Meta's and Twilio's send endpoints as they answer a success; kept-alive HTTP/1.1.

    A minimal asyncio server, so the stand-in costs the two shared cores as little as possible.
    """

    count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = _CONTENT_LENGTH.search(head)
            size = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < size:
                return
            body, self.buffer = self.buffer[end + 4:size], self.buffer[size:]
            path = head.split(" ", 2)[1]
            self.received(path, body)
            self.transport.write(self.answer(path))

    def received(self, path: str, body: bytes) -> None:
        """Called with each request before it is answered; a subclass may record it."""

    @classmethod
    def answer(cls, path: str) -> bytes:
        cls.count += 1
        if path == f"/{PHONE_ID}/messages":
            status, body = "200 OK", {"messaging_product": "whatsapp",
                                      "messages": [{"id": f"wamid.BENCH{cls.count}"}]}
        elif path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            status, body = "201 Created", {"sid": f"SM{cls.count:032d}", "status": "queued"}
        else:
            status, body = "404 Not Found", {"error": "unknown path"}
        data = json.dumps(body).encode()
        return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                .encode() + data)


_CONTENT_LENGTH = re.compile(r"(?im)^content-length:\s*(\d+)")


def start_provider(protocol: type[ProviderStandIn] = ProviderStandIn) -> str:
    """Run the stand-in (or a subclass) on a loopback port in a daemon thread; returns its base URL."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(protocol, "127.0.0.1", 0))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def create_database(admin_url: str) -> str:
    name = f"khaacho_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def prepare_schema(env: dict) -> None:
    """Migrations and the demo catalog, through the real CLI."""
    catalog = str(ROOT / "khaacho" / "data" / "demo_catalog.csv")
    for args in (["db", "upgrade"], ["catalog", "import", catalog]):
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env, check=True,
                       capture_output=True)


def add_products(db_url: str, count: int) -> None:
    """``count`` more active products beside the demo catalog, named like no order text names anything."""
    now = datetime.now(UTC)
    rows = [(f"BENCH-{i:06d}", f"bench item {i:06d}", "", "pcs", 10, True, now) for i in range(count)]
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO products (sku, name, aliases, unit, price, active, updated_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)


# Orders that are clear from the first message, so each is confirmed by one tap.
CLEAR_ORDERS = ("10 kg chini ra 5 kg musuro dal", "चामल २५ केजी", "5 kg chini, 2 packet wai wai",
                "sunflower oil 2 litre\nchini 5 kg", "चिनी ५ केजी", "mansuli chamal 25 kg")
INSERT = ("INSERT INTO webhook_messages (message_id, webhook_source, phone_number, sender_id, message_type,"
          " message_text, payload, status, duplicate_count, message_timestamp, first_received_at, attempts,"
          " error_count, relayed_at, updated_at, created_at) VALUES (" + ", ".join(["%s"] * 16) + ")")


def queued_row(message_id: str, source: str, phone: str, message_type: str, text: str,
               payload: str | None = None, relayed: bool = True) -> tuple:
    """The values of ``INSERT`` for a queued message as intake stores it (relayed: the bench queues it)."""
    now = datetime.now(UTC)
    return (message_id, source, phone, phone, message_type, text, payload, "queued", 0, now, now, 0, 0,
            now if relayed else None, now, now)


def insert_messages(db_url: str, count: int, taps: bool) -> None:
    """Empty the message tables and insert ``count`` queued (and relayed: the bench queues them) messages."""
    texts = CLEAR_ORDERS if taps else [
        case["text"] for case in json.loads((ROOT / "tests" / "data" / "orders.json").read_text())]
    rows = []
    for i in range(count):
        source = "whatsapp" if i % 2 == 0 else "twilio"
        phone = f"+97798{i % 100000:08d}"
        message_id = f"wamid.BENCHIN{i}" if source == "whatsapp" else f"SM{i:032d}"
        rows.append(queued_row(message_id, source, phone, "text", texts[i % len(texts)]))
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE webhook_messages, orders, order_items, outbound_messages"
                     " RESTART IDENTITY CASCADE")
        with conn.cursor() as cur:
            cur.executemany(INSERT, rows)


def tap_message(n: int, source: str, phone: str, order_id: int) -> tuple:
    """The row intake stores for the shop's tap on Confirm (Meta button reply, Twilio button)."""
    tapped, now = f"order:{order_id}:v1:confirm", datetime.now(UTC)
    if source == "whatsapp":
        message_id = f"wamid.BENCHTAP{n}"
        payload = {"from": phone.lstrip("+"), "id": message_id, "timestamp": str(int(now.timestamp())),
                   "type": "interactive", "interactive": {
                       "type": "button_reply", "button_reply": {"id": tapped, "title": "Confirm / Pakka"}}}
    else:
        message_id = f"SMTAP{n:030d}"
        payload = {"MessageSid": message_id, "From": f"whatsapp:{phone}",
                   "To": SECRETS["TWILIO_WHATSAPP_NUMBER"], "MessageType": "button", "ButtonPayload": tapped,
                   "ButtonText": "Confirm", "Body": "Confirm"}
    return queued_row(message_id, source, phone, "button", "Confirm", json.dumps(payload), relayed=False)


def tap_confirmations(db_url: str, count: int, stop: threading.Event) -> None:
    """Each shop taps Confirm once its confirmation is sent: store the tap and tell the relay.

    Workers commit replies out of id order, so each look reads back a margin below the highest
    id seen, and a set keeps any order from being tapped twice.
    """
    seen, tapped = 0, set()
    with psycopg.connect(db_url, autocommit=True) as conn:
        while len(tapped) < count and not stop.is_set():
            rows = [row for row in conn.execute(
                "SELECT o.id, o.order_id, w.webhook_source, w.phone_number FROM outbound_messages o"
                " JOIN webhook_messages w ON w.id = o.webhook_message_id"
                " WHERE o.kind = 'confirmation' AND o.id > %s ORDER BY o.id", (seen - 500,)).fetchall()
                if row[1] not in tapped]
            if rows:
                with conn.transaction():
                    with conn.cursor() as cur:
                        cur.executemany(INSERT, [tap_message(len(tapped) + n, source, phone, order_id)
                                                 for n, (_, order_id, source, phone) in enumerate(rows)])
                    conn.execute("SELECT pg_notify('khaacho_intake', '')")
                seen = max(seen, rows[-1][0])
                tapped.update(row[1] for row in rows)
            else:
                time.sleep(0.1)


def enqueue_all(env: dict, count: int) -> float:
    """Queue a process_message task per message id, from a child using the service environment."""
    started = time.monotonic()
    code = ("from wsgi import app\nfrom khaacho.tasks import process_message\n"
            f"for i in range(1, {count} + 1):\n    process_message(i)\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.monotonic() - started


def completed(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM webhook_messages GROUP BY status").fetchall())


def run_config(spec: str, env: dict, db_url: str, count: int, logdir: Path, timeout: float,
               taps: bool) -> dict:
    processes, threads = (int(part) for part in spec.lower().split("x"))
    insert_messages(db_url, count, taps)
    enqueue_seconds = enqueue_all(env, count)
    target = 2 * count if taps else count
    stop = threading.Event()
    feeder = threading.Thread(target=tap_confirmations, args=(db_url, count, stop), daemon=True)
    ProviderStandIn.count = 0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    consumers = []
    started = time.monotonic()
    for n in range(processes):
        args = [str(VENV_BIN / "huey_consumer"), "wsgi.huey", "-k", "thread", "-w", str(threads), "-q"]
        if n:
            args.append("-n")
        log = open(logdir / f"consumer-{spec}-{n}.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        consumers.append((proc, log))
    if taps:
        feeder.start()
    first_done = None
    try:
        while time.monotonic() - started < timeout:
            statuses = completed(db_url)
            done = statuses.get("completed", 0)
            if done and first_done is None:
                first_done = time.monotonic()
            if done >= target:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for proc, _ in consumers:
            proc.send_signal(signal.SIGINT)
        for proc, log in consumers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    consumer_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    statuses = completed(db_url)
    with psycopg.connect(db_url) as conn:
        orders, confirmed, sent = conn.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM orders WHERE status = 'confirmed'),"
            " (SELECT count(*) FROM outbound_messages WHERE status = 'sent')"
        ).fetchone()
    done = statuses.get("completed", 0)
    steady = (done - 1) / (elapsed - (first_done - started)) if first_done and done > 1 else 0.0
    return {"config": spec, "messages": target, "completed": done, "statuses": statuses, "seconds": elapsed,
            "per_second": done / elapsed, "steady_per_second": steady, "orders": orders,
            "confirmed": confirmed, "replies_sent": sent,
            "provider_requests": ProviderStandIn.count, "enqueue_seconds": enqueue_seconds,
            "consumer_cpu_ms_per_message": consumer_cpu * 1000 / max(done, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--configs", default="1x4,2x4,2x8", help="comma-separated PxT: processes x threads")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per configuration")
    parser.add_argument("--no-taps", dest="taps", action="store_false",
                        help="drain the order texts alone, without confirming each order by a tap")
    args = parser.parse_args()

    provider_url = start_provider()
    workdir = Path(tempfile.mkdtemp(prefix="khaacho-bench-"))
    redis_proc, redis_url = start_redis(workdir)
    db_url = create_database(args.pg_admin_url)
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(SECRETS)
    env.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "WHATSAPP_API_URL": provider_url,
                "TWILIO_API_URL": provider_url, "PYTHONUNBUFFERED": "1"})
    results = []
    try:
        prepare_schema(env)
        for spec in args.configs.split(","):
            result = run_config(spec.strip(), env, db_url, args.messages, workdir, args.timeout, args.taps)
            results.append(result)
            print(f"{result['config']:>5}: {result['completed']}/{result['messages']} completed in "
                  f"{result['seconds']:.1f} s = {result['per_second']:.0f} msg/s "
                  f"(steady {result['steady_per_second']:.0f} msg/s; orders {result['orders']}, "
                  f"confirmed {result['confirmed']}, "
                  f"replies sent {result['replies_sent']}, provider requests {result['provider_requests']}; "
                  f"enqueue {result['enqueue_seconds']:.1f} s; consumer CPU "
                  f"{result['consumer_cpu_ms_per_message']:.1f} ms/msg)", flush=True)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        drop_database(args.pg_admin_url, db_url)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
