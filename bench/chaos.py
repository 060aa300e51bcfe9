"""Chaos under ack load: what a database drop, a killed process or a Redis restart costs.

Starts the deployment as ``bench/e2e.py`` does (own redis-server and PostgreSQL database on
loopback, 4 sync web workers, one consumer, a stand-in for Meta's send API that counts replies per
inbound message), with ``SWEEP_AFTER_SECONDS`` short so the sweep's catch-up fits the run. Each
scenario sends signed order messages at ``--rate`` for ``--seconds`` and disturbs the deployment
``--at`` seconds in:

- ``postgres``: every connection of the app's database is terminated (``pg_terminate_backend``),
  as a failover drops them; with ``--pg-restart`` the PostgreSQL cluster itself is restarted
  (only on a machine where nothing else uses it). Refusals are allowed only while it is down.
- ``web-kill``: one gunicorn worker is SIGKILLed (its master starts another).
- ``consumer-kill``: the consumer is SIGKILLed, and a new one started a second later.
- ``redis-restart``: Redis is stopped and started again three seconds later.

After the load it waits until every acknowledged message is settled, then checks: every ``200``
is stored, every stored message completed, each answered exactly once at the stand-in, and (for
``postgres``) no refusal after the database was back. Prints PASS/FAIL lines; exits 1 on a FAIL.

Run from the repository root, nothing else busy on the machine::

    .venv/bin/python bench/chaos.py                       # all four scenarios
    .venv/bin/python bench/chaos.py --scenarios postgres,consumer-kill --rate 100
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.ack import wait_for_app  # noqa: E402
from bench.e2e import TimingStandIn  # noqa: E402
from bench.horizontal import ORDER_TEXTS, Services, signed  # noqa: E402
from bench.refapps import PATH  # noqa: E402
from bench.worker import (  # noqa: E402
    SECRETS,
    create_database,
    drop_database,
    free_port,
    prepare_schema,
    start_provider,
)

BIN = Path(sys.executable).parent
SCENARIOS = ("postgres", "web-kill", "consumer-kill", "redis-restart")


class Load:
    """Signed messages at a steady rate from a few threads; what each answer was, and when."""

    def __init__(self, port: int, prefix: str, rate: int, threads: int = 16) -> None:
        self.port, self.prefix, self.rate, self.threads = port, prefix, rate, threads
        self.answers: list[tuple[str, int, float]] = []  # message id, HTTP status (0: no answer), time
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self, seconds: float) -> None:
        start = time.monotonic()
        workers = [threading.Thread(target=self._send, args=(k, start, seconds)) for k in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _send(self, k: int, start: float, seconds: float) -> None:
        i = k
        while (due := start + i / self.rate) < start + seconds:
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            message_id = f"{self.prefix}{i:07d}"
            body, signature = signed(message_id, f"97798{i % 3000:08d}", ORDER_TEXTS[i % len(ORDER_TEXTS)])
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("POST", PATH, body, {"Content-Type": "application/json",
                                                  "X-Hub-Signature-256": signature})
                status = conn.getresponse().status
            except OSError:
                status = 0
            finally:
                conn.close()
            with self._lock:
                self.answers.append((message_id, status, time.monotonic()))
            i += self.threads

    def acknowledged(self) -> set[str]:
        return {m for m, status, _ in self.answers if status == 200}

    def refusals_after(self, moment: float) -> int:
        return sum(1 for _, status, when in self.answers if status != 200 and when > moment)

    def refusals(self) -> int:
        return sum(1 for _, status, _ in self.answers if status != 200)


class Deployment:
    """Web, consumer and Redis of the run, each replaceable by a scenario."""

    def __init__(self, workdir: Path, env: dict, services: Services) -> None:
        self.workdir, self.env, self.services = workdir, env, services
        self.redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        self.redis = self.start_redis()
        self.port = free_port()
        self.web = services.start("web", [str(BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{self.port}",
                                          "-w", "4", "-k", "sync", "--backlog", "2048", "--log-level",
                                          "warning"], env)
        wait_for_app(f"http://127.0.0.1:{self.port}/healthz", self.web, 4, timeout=30)
        self.consumer = self.start_consumer()

    def start_redis(self) -> subprocess.Popen:
        proc = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return proc

    def start_consumer(self) -> subprocess.Popen:
        return self.services.start("consumer", [str(BIN / "huey_consumer"), "wsgi.huey", "-k", "thread",
                                                "-w", "4", "-q"], self.env)

    def web_worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.web.pid}/task/{self.web.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def stop(self) -> None:
        self.services.stop_all()
        self.redis.terminate()
        self.redis.wait(10)


def terminate_connections(db_url: str) -> int:
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall())


def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)


def disturb(scenario: str, deployment: Deployment, db_url: str, args: argparse.Namespace) -> float:
    """Do the scenario's damage; the moment the deployment's dependencies are whole again."""
    if scenario == "postgres":
        if args.pg_restart:
            restart_postgres()
        else:
            terminate_connections(db_url)
    elif scenario == "web-kill":
        os.kill(deployment.web_worker_pids()[0], signal.SIGKILL)
    elif scenario == "consumer-kill":
        deployment.consumer.kill()
        deployment.consumer.wait()
        deployment.services.started.remove(deployment.consumer)
        time.sleep(1)
        deployment.consumer = deployment.start_consumer()
    elif scenario == "redis-restart":
        deployment.redis.terminate()
        deployment.redis.wait(10)
        time.sleep(3)
        deployment.redis = deployment.start_redis()
    return time.monotonic()


def settle(db_url: str, prefix: str, expected: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(db_url) as conn:
            statuses = dict(conn.execute(
                "SELECT status, count(*) FROM webhook_messages WHERE message_id LIKE %s GROUP BY status",
                (prefix + "%",)).fetchall())
        if statuses.get("completed", 0) >= expected or time.monotonic() > deadline:
            time.sleep(1)  # a second reply, were there one, would land now
            return statuses


def stored_ids(db_url: str, prefix: str) -> set[str]:
    with psycopg.connect(db_url) as conn:
        return {row[0] for row in conn.execute(
            "SELECT message_id FROM webhook_messages WHERE message_id LIKE %s", (prefix + "%",))}


def run_scenario(scenario: str, deployment: Deployment, db_url: str, args: argparse.Namespace) -> list[tuple]:
    prefix = f"wamid.CHAOS-{scenario}-"
    load = Load(deployment.port, prefix, args.rate)
    sender = threading.Thread(target=load.run, args=(args.seconds,))
    sender.start()
    time.sleep(args.at)
    whole_again = disturb(scenario, deployment, db_url, args)
    sender.join()
    acked = load.acknowledged()
    statuses = settle(db_url, prefix, len(acked), args.settle)
    stored = stored_ids(db_url, prefix)
    replies = {m: n for m, n in TimingStandIn.replies.items() if m.startswith(prefix)}
    checks = [
        (scenario, "every 200 stored", not (acked - stored),
         f"{len(acked - stored)} of {len(acked)} missing"),
        (scenario, "every stored message completed", statuses.get("completed", 0) == len(stored),
         f"statuses {statuses}"),
        (scenario, "each answered once", len(replies) == len(stored) and set(replies.values()) <= {1},
         f"{len(replies)} answered of {len(stored)}, most replies to one message "
         f"{max(replies.values(), default=0)}"),
    ]
    if scenario == "postgres":
        late = load.refusals_after(whole_again + 1.0)
        checks.append((scenario, "no refusal once the database is back", late == 0,
                       f"{load.refusals()} refused in all, {late} after it was back"))
    else:
        checks.append((scenario, "refusals", True, f"{load.refusals()} of {len(load.answers)} not 200"))
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rate", type=int, default=100, help="messages per second during each scenario")
    parser.add_argument("--seconds", type=float, default=12, help="load per scenario")
    parser.add_argument("--at", type=float, default=4, help="seconds into the load the damage is done")
    parser.add_argument("--settle", type=float, default=120, help="seconds to wait for the catch-up")
    parser.add_argument("--pg-restart", action="store_true", help="restart the PostgreSQL cluster itself")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    db_url = create_database(args.pg)
    checks: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="khaacho-chaos-") as tmp:
        workdir = Path(tmp)
        provider = start_provider(TimingStandIn)
        env = dict(os.environ, **SECRETS, APP_ENV="production", DATABASE_URL=db_url,
                   REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", WHATSAPP_API_URL=provider,
                   TWILIO_API_URL=provider, TRUSTED_PROXY_COUNT="0", WEBHOOK_RATE_LIMIT_MAX="100000",
                   SWEEP_AFTER_SECONDS="10")
        prepare_schema(dict(env))
        services = Services(workdir)
        deployment = Deployment(workdir, env, services)
        try:
            for scenario in scenarios:
                checks += run_scenario(scenario, deployment, db_url, args)
        finally:
            deployment.stop()
            drop_database(args.pg, db_url)
    for scenario, what, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {scenario:<14} {what:<38} {detail}")
    return 0 if all(ok for *_, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
