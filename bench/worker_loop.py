"""The worker's own cost per message: ``worker.process`` in a loop, in one thread, on PostgreSQL.

Inserts ``--messages`` queued Meta order texts from ``--senders`` shops (a sender's second and
later messages amend its pending order: fewer senders, more follow-ups), then calls
``worker.process`` on each in this process, with replies sent to a loopback stand-in for Meta.
No web workers, no queue, no relay and no other thread compete, so the figures are the worker's
own: its CPU, its PostgreSQL backend's CPU and its statements per message. The first 50 messages
warm up and are not counted. The database is created for the run and dropped after.

CPU seconds drift with the machine (a shared 2-core machine can be 15 % slower an hour later);
instruction counts do not. ``--instructions`` runs the loop twice under ``valgrind --tool=callgrind``
(``--messages`` and 100 messages, same senders) and reports the difference per message, so start-up
cancels out: the same code gives the same count, whatever else the machine is doing.

Run from the repository root::

    .venv/bin/python bench/worker_loop.py                               # 3,000 messages, all new orders
    .venv/bin/python bench/worker_loop.py --messages 1200 --senders 400 # three quarters follow-ups
    .venv/bin/python bench/worker_loop.py --instructions --messages 600 --senders 300  # 60 % follow-ups
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack import cpu_seconds  # noqa: E402
from bench.horizontal import ORDER_TEXTS  # noqa: E402
from bench.worker import (  # noqa: E402
    INSERT,
    SECRETS,
    add_products,
    create_database,
    drop_database,
    prepare_schema,
    queued_row,
    start_provider,
)

WARM_UP = 50
BASELINE = 100  # messages of the run whose instruction count is taken away (start-up and warm-up)


def insert_messages(db_url: str, count: int, senders: int) -> None:
    rows = []
    for i in range(count):
        phone = f"+97798{i % senders:08d}"
        text = ORDER_TEXTS[i % len(ORDER_TEXTS)]
        rows.append(queued_row(f"wamid.LOOP{i}", "whatsapp", phone, "text", text))
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.executemany(INSERT, rows)


def run_loop(args: argparse.Namespace) -> None:
    db_url = create_database(args.pg)
    try:
        provider = start_provider()
        env = dict(**SECRETS, APP_ENV="production", DATABASE_URL=db_url, REDIS_URL=args.redis,
                   WHATSAPP_API_URL=provider, TWILIO_API_URL=provider, TRUSTED_PROXY_COUNT="0",
                   WEBHOOK_RATE_LIMIT_MAX="100000")
        prepare_schema(dict(os.environ, **env))
        os.environ.update(env)
        insert_messages(db_url, args.messages, args.senders)
        add_products(db_url, args.products)
        loop(args.messages)
    finally:
        drop_database(args.pg, db_url)


def loop(count: int) -> None:
    from sqlalchemy import event, text

    from khaacho.extensions import db
    from khaacho.processing import worker
    from wsgi import app

    for handler in logging.getLogger().handlers:  # the one line per message still costs; it is not shown
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    statements = [0]

    class CountingCursor(psycopg.Cursor):
        """Counts every statement the driver runs, whether through SQLAlchemy or on its cursor."""

        def execute(self, *args, **kwargs):
            statements[0] += 1
            return super().execute(*args, **kwargs)

    with app.app_context():
        event.listen(db.engine, "connect", lambda conn, _: setattr(conn, "cursor_factory", CountingCursor))
        backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.rollback()
    for message_id in range(1, WARM_UP + 1):
        with app.app_context():
            worker.process(message_id)
    statements[0] = 0
    outcomes: Counter[str] = Counter()
    pg_before, cpu_before, wall_before = cpu_seconds([backend]), time.process_time(), time.perf_counter()
    for message_id in range(WARM_UP + 1, count + 1):
        with app.app_context():
            outcomes[worker.process(message_id).status] += 1
    counted = count - WARM_UP
    cpu = (time.process_time() - cpu_before) * 1000 / counted
    wall = (time.perf_counter() - wall_before) * 1000 / counted
    pg = (cpu_seconds([backend]) - pg_before) * 1000 / counted
    with app.app_context():
        db.engine.dispose()
    print(f"{counted} messages ({dict(outcomes)}): worker CPU {cpu:.3f} ms, its PostgreSQL backend "
          f"{pg:.3f} ms, wall {wall:.3f} ms, {statements[0] / counted:.2f} statements per message")


def instructions(args: argparse.Namespace) -> None:
    """Instructions per message: the loop under callgrind at --messages and at BASELINE, differenced."""
    totals = {}
    for count in (BASELINE, args.messages):
        with tempfile.TemporaryDirectory() as tmp:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable,
                       __file__, "--messages", str(count), "--senders", str(args.senders),
                       "--products", str(args.products), "--pg", args.pg,
                       "--redis", args.redis]
            done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="0"),
                                  capture_output=True, text=True, check=True)
        totals[count] = int(re.search(r"Collected : (\d+)", done.stderr).group(1))
        print(f"{count} messages: {totals[count]:,} instructions; {done.stdout.strip()}")
    per_message = (totals[args.messages] - totals[BASELINE]) / (args.messages - BASELINE)
    print(f"{per_message / 1e6:.3f} M instructions per message (messages {BASELINE + 1}-{args.messages}, "
          f"{args.senders} senders)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=100000,
                        help="distinct shops; fewer means more follow-ups")
    parser.add_argument("--products", type=int, default=0,
                        help="active products added to the demo catalog's (a wholesaler's catalog is larger)")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    if args.messages <= (BASELINE if args.instructions else WARM_UP):
        parser.error("--messages must be more than the messages not counted")
    if args.instructions:
        instructions(args)
    else:
        run_loop(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
