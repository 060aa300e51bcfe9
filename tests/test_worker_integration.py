"""A real huey_consumer (on Redis and on the embedded SQLite queue) behind a real gunicorn intake.

A pytest-httpserver on loopback stands in for Meta and Twilio and records every reply.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select
from werkzeug import Response

from config import database_url
from khaacho import create_app
from khaacho.demo import DEMO_CATALOG
from khaacho.extensions import db
from khaacho.models import Order, OutboundMessage, WebhookMessage, WebhookSignatureLog
from khaacho.ops import alerts, heartbeat
from khaacho.orders.catalog import import_catalog
from khaacho.processing.senders import LIMITER_DOWN_REASON
from tests.conftest import ROOT, SECRETS, VENV_BIN, free_port, make_config, service_env
from tests.kinds_support import META_EXPECTED, TWILIO_EXPECTED, meta_kind, twilio_kind
from tests.support import META_PATH, TWILIO_PATH, meta_text_payload, signed_meta, signed_twilio, wait_for

pytestmark = pytest.mark.integration

SEND_PATH = f"/{SECRETS['WHATSAPP_PHONE_NUMBER_ID']}/messages"
TWILIO_SEND_PATH = f"/2010-04-01/Accounts/{SECRETS['TWILIO_ACCOUNT_SID']}/Messages.json"
ORDER_TEXT = "10 kg chini ra 5 kg musuro dal"


class Provider:
    """Meta and Twilio on loopback: records each reply; can be switched down or made slow."""

    def __init__(self, httpserver) -> None:
        self.replies: list[tuple[str, str, str]] = []  # (provider, recipient, body)
        self.buttons: dict[str, list[str]] = {}  # the reply button ids last sent to each recipient (Meta)
        self.refused = 0
        self.down = False
        self.delay = 0.0
        self._lock = threading.Lock()
        httpserver.expect_request(SEND_PATH, method="POST").respond_with_handler(self._meta)
        httpserver.expect_request(TWILIO_SEND_PATH, method="POST").respond_with_handler(self._twilio)
        self.url = httpserver.url_for("").rstrip("/")

    def _answer(self, provider: str, recipient: str, body: str) -> Response | None:
        time.sleep(self.delay)
        with self._lock:
            if self.down:
                self.refused += 1
                return None
            self.replies.append((provider, recipient, body))
            return Response(json.dumps({"messages": [{"id": f"wamid.OUT{len(self.replies)}"}],
                                        "sid": f"SM{len(self.replies):032d}"}),
                            status=200 if provider == "whatsapp" else 201, content_type="application/json")

    def _meta(self, request) -> Response:
        data = request.get_json()
        recipient = data.get("to") or data.get("recipient")
        if data["type"] == "interactive":
            interactive = data["interactive"]
            body = interactive["body"]["text"]
            self.buttons[recipient] = [b["reply"]["id"] for b in interactive["action"].get("buttons", [])]
        else:
            body = data["text"]["body"]
        answer = self._answer("whatsapp", recipient, body)
        return answer or Response(json.dumps({"error": {"code": 131000, "message": "Something went wrong"}}),
                                  status=500, content_type="application/json")

    def _twilio(self, request) -> Response:
        answer = self._answer("twilio", request.form["To"], request.form["Body"])
        return answer or Response(json.dumps({"code": 20500, "message": "Internal Server Error"}),
                                  status=500, content_type="application/json")

    def per_recipient(self) -> Counter:
        return Counter(recipient for _, recipient, _ in self.replies)


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a free loopback port, which the test may stop and restart."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"
        proc: subprocess.Popen | None = None

        def start(self) -> None:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(self.ping, "redis-server to start", timeout=10)

        def stop(self) -> None:
            self.proc.terminate()
            self.proc.wait(10)

        def ping(self) -> bool:
            import redis

            try:
                return redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
            except redis.ConnectionError:
                return False

    server = OwnRedis()
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(params=["redis", "sqlite-queue"])
def stack(request, tmp_path, httpserver):
    """The database, the queue and the environment of the web and worker processes, per queue backend."""
    provider = Provider(httpserver)
    extra = {"WHATSAPP_API_URL": provider.url, "TWILIO_API_URL": provider.url,
             "TASK_RETRY_BASE_SECONDS": 1, "TASK_MAX_RETRIES": 2, "TRUSTED_PROXY_COUNT": 0}
    if request.param == "redis":
        # A Redis of the test's own: the shared one may be flushed by other test sessions meanwhile.
        db_url, redis_url = request.getfixturevalue("pg_clean_url"), request.getfixturevalue("own_redis").url
        env = service_env(db_url, redis_url, **extra)
    else:
        db_url = request.getfixturevalue("sqlite_url")
        env = service_env(db_url, None, HUEY_SQLITE_PATH=str(tmp_path / "huey.db"), **extra)
    app = create_app(make_config(database_url(db_url)))
    with app.app_context():
        import_catalog(DEMO_CATALOG)
    yield Stack(app, env, provider)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Stack:
    """The pieces one integration test drives."""

    def __init__(self, app, env: dict, provider: Provider) -> None:
        self.app, self.env, self.provider = app, env, provider

    def statuses(self) -> Counter:
        with self.app.app_context():
            by_status = select(WebhookMessage.status, func.count()).group_by(WebhookMessage.status)
            rows = db.session.execute(by_status)
            counts = Counter(dict(rows.all()))
            db.session.rollback()
            return counts

    def limiter_outage_audited(self) -> bool:
        with self.app.app_context():
            reasons = db.session.scalars(select(WebhookSignatureLog.reason)).all()
            db.session.remove()
        return LIMITER_DOWN_REASON in reasons

    def count(self, model) -> int:
        with self.app.app_context():
            return db.session.scalar(select(func.count()).select_from(model))

    def message(self, **where) -> WebhookMessage:
        with self.app.app_context():
            row = db.session.scalars(select(WebhookMessage).filter_by(**where)).one()
            db.session.expunge(row)
            return row

    def flask(self, *args: str) -> str:
        """Run ``flask --app wsgi …`` in the service environment; returns its output."""
        done = subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def post_meta_batch(base: str, senders: list[str], text: str = ORDER_TEXT, prefix: str = "wamid.IN") -> None:
    """One signed Meta webhook carrying a text message from each sender."""
    payload = meta_text_payload(text, f"{prefix}0", senders[0])
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"] = [dict(value["messages"][0], id=f"{prefix}{i}", **{"from": sender})
                         for i, sender in enumerate(senders)]
    body, headers = signed_meta(payload)
    response = requests.post(base + META_PATH, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def post_twilio(base: str, sender: str, text: str, sid: str) -> None:
    form = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": SECRETS["TWILIO_ACCOUNT_SID"],
            "From": f"whatsapp:{sender}", "To": SECRETS["TWILIO_WHATSAPP_NUMBER"], "Body": text,
            "NumMedia": "0", "WaId": sender.lstrip("+"), "ProfileName": "Hari Kirana Pasal"}
    url = base + TWILIO_PATH
    response = requests.post(url, data=form, headers=signed_twilio(url, form), timeout=10)
    assert response.status_code == 200, response.text


def senders(n: int) -> list[str]:
    return [f"97798{i:08d}" for i in range(n)]


def test_orders_from_both_providers_are_confirmed_by_the_consumer(stack, processes):
    base = processes.gunicorn(stack.env, workers=1)
    consumer = processes.consumer(stack.env)

    post_meta_batch(base, ["9779841234567"])
    post_twilio(base, "+9779851234567", "चामल २५ केजी", "SM" + "1" * 32)

    wait_for(lambda: stack.statuses()["completed"] == 2, "both messages completed", logs=[consumer])
    replies = {recipient: body for _, recipient, body in stack.provider.replies}
    assert len(stack.provider.replies) == 2
    assert "Total / Jamma: NPR 1,900.00" in replies["9779841234567"]
    assert "Mansuli Rice: 25 kg × NPR 85.00 = NPR 2,125.00" in replies["whatsapp:+9779851234567"]
    assert stack.count(Order) == 2
    assert consumer.output().count("outbox relay started") == 1  # one relay for the two worker threads


def test_provider_outage_retries_then_dead_then_replay_completes_once(stack, processes):
    stack.provider.down = True
    base = processes.gunicorn(stack.env, workers=1)
    consumer = processes.consumer(stack.env)

    post_meta_batch(base, ["9779841234567"])
    wait_for(lambda: stack.statuses()["dead"] == 1, "retries to run out", logs=[consumer])
    dead = stack.message(message_id="wamid.IN0")
    assert dead.attempts == 3 and dead.error_count == 3  # the first try and TASK_MAX_RETRIES=2 retries
    assert dead.error_message.startswith("gave up after 3 attempts") and "131000" in dead.error_message
    assert stack.provider.refused == 3

    stack.provider.down = False
    output = stack.flask("webhooks", "replay", str(dead.id))

    assert f"{dead.id}: dead -> queued" in output
    wait_for(lambda: stack.statuses()["completed"] == 1, "the replayed message", logs=[consumer])
    assert len(stack.provider.replies) == 1 and stack.count(Order) == 1
    assert stack.message(message_id="wamid.IN0").error_message is None


def test_consumer_killed_mid_batch_and_restarted_completes_every_message_once(stack, processes):
    stack.provider.delay = 0.05
    batch = senders(30)
    env = dict(stack.env)
    base = processes.gunicorn(env, workers=1)
    first = processes.consumer(env, periodic=False)
    post_meta_batch(base, batch)
    wait_for(lambda: stack.statuses()["completed"] >= 6, "some progress", logs=[first])

    first.stop(sig=signal.SIGKILL)
    killed_at = time.monotonic()
    second = processes.consumer(env, periodic=False)
    # Each of the killed consumer's two threads may have popped a task and died before claiming
    # it: those messages stay ``queued`` with no task anywhere, so wait for all but them.
    wait_for(lambda: stack.statuses()["queued"] <= 2, "the rest of the queue", logs=[second])
    # What the killed worker held is lost from the queue: the sweep finds it once it is overdue
    # (re-queueing one still in the queue is harmless: the claim lets only one task process it).
    time.sleep(max(0.0, killed_at + 3 - time.monotonic()))
    stack.flask("webhooks", "sweep", "--after", "3")
    wait_for(lambda: stack.statuses()["completed"] == len(batch), "every message completed", logs=[second])

    assert stack.count(Order) == len(batch) and stack.count(OutboundMessage) == len(batch)
    per_recipient = stack.provider.per_recipient()
    assert max(per_recipient.values()) == 1  # nobody got a second confirmation
    with stack.app.app_context():
        reply_states = Counter(db.session.scalars(select(OutboundMessage.status)))
    # A reply is "unknown" only if its worker died mid-send (at most one per worker thread).
    assert reply_states["sent"] + reply_states["unknown"] == len(batch) and reply_states["unknown"] <= 2
    assert sum(per_recipient.values()) >= reply_states["sent"]


def test_messages_arriving_while_redis_is_down_are_caught_up_by_the_sweep(
        pg_clean_url, own_redis, processes, httpserver):
    provider = Provider(httpserver)
    env = service_env(pg_clean_url, own_redis.url, WHATSAPP_API_URL=provider.url, TWILIO_API_URL=provider.url,
                      TRUSTED_PROXY_COUNT=0)
    stack = Stack(create_app(make_config(database_url(pg_clean_url))), env, provider)
    with stack.app.app_context():
        import_catalog(DEMO_CATALOG)
    base = processes.gunicorn(env, workers=1)
    consumer = processes.consumer(env, periodic=False)

    own_redis.stop()
    post_meta_batch(base, senders(5))
    assert stack.statuses() == Counter({"queued": 5})  # stored and acknowledged, not queued anywhere
    wait_for(stack.limiter_outage_audited, "the relay to meet the dead Redis", timeout=10, logs=[consumer])
    own_redis.start()
    time.sleep(1)
    assert stack.statuses() == Counter({"queued": 5})  # the queue came back empty: the tasks are lost

    output = stack.flask("webhooks", "sweep", "--after", "0")

    assert "re-queued 5 stuck messages" in output
    wait_for(lambda: stack.statuses()["completed"] == 5, "the swept messages", logs=[consumer])
    assert sorted(provider.per_recipient().values()) == [1] * 5
    with stack.app.app_context():
        db.session.remove()
        db.engine.dispose()



def test_every_message_kind_of_both_providers_is_settled_by_the_consumer(stack, processes):
    """Every kind fixture through gunicorn and a real consumer: final status per kind, one reply each."""
    base = processes.gunicorn(stack.env, workers=1)
    consumer = processes.consumer(stack.env)
    # Media from one shop is acknowledged once in 10 minutes, and an edit or deletion would change the
    # order the shop's text made: each of those comes from a shop of its own.
    def sender(name: str, expected: tuple, i: int) -> str | None:
        return f"9779810{i:06d}" if expected[1] == "needs_attention" or name in ("edit", "revoke") else None

    for i, (name, expected) in enumerate(META_EXPECTED.items()):
        phone = sender(name, expected, i)
        body, headers = signed_meta(meta_kind(name, **({"from": phone} if phone else {})))
        assert requests.post(base + META_PATH, data=body, headers=headers, timeout=10).status_code == 200
    for i, (name, expected) in enumerate(TWILIO_EXPECTED.items(), start=100):
        phone = sender(name, expected, i)
        form = twilio_kind(name, MessageSid=f"SMI{name}", **({"From": f"whatsapp:+{phone}"} if phone else {}))
        url = base + TWILIO_PATH
        assert requests.post(url, data=form, headers=signed_twilio(url, form), timeout=10).status_code == 200

    outcomes = [*META_EXPECTED.values(), *TWILIO_EXPECTED.values()]
    expected = Counter(status for _, status, _, _ in outcomes)
    wait_for(lambda: stack.statuses() == expected, f"every kind settled as {dict(expected)}", timeout=90,
             logs=[consumer])
    replies = sum(reply is not None for _, _, reply, _ in outcomes)
    assert len(stack.provider.replies) == replies == stack.count(OutboundMessage)


# --- heartbeats, task timings and the consumer's log ----------------------------------------

def consumer_states(stack) -> list[str]:
    with stack.app.app_context():
        return [c["state"] for c in heartbeat.consumers()]


def test_killed_consumer_shows_dead_and_raises_the_silent_worker_alert(stack, processes):
    stack.env.update(WORKER_HEARTBEAT_SECONDS="1", WORKER_SILENT_SECONDS="4")
    stack.app.config["WORKER_SILENT_SECONDS"] = 4
    base = processes.gunicorn(stack.env, workers=1)
    consumer = processes.consumer(stack.env, workers=2)
    wait_for(lambda: consumer_states(stack) == ["alive"], "the consumer to report in",
             logs=[consumer])

    post_meta_batch(base, ["9779841234567"])
    wait_for(lambda: stack.statuses()["completed"] == 1, "the message completed", logs=[consumer])

    def timed() -> bool:
        with stack.app.app_context():
            timings = heartbeat.timing_percentiles()
        return timings["run"]["count"] >= 1 and timings["wait"]["count"] >= 1

    wait_for(timed, "queue wait and run time of the task recorded", logs=[consumer])
    with stack.app.app_context():
        timings = heartbeat.timing_percentiles()
    assert timings["run"]["p95"] is not None and timings["wait"]["p50"] is not None

    consumer.proc.send_signal(signal.SIGKILL)
    consumer.proc.wait(10)
    wait_for(lambda: consumer_states(stack) == ["dead"], "the killed consumer shown dead",
             timeout=30)
    with stack.app.app_context():
        fired = {check.kind for check in alerts.evaluate() if check.firing}
    assert "worker_silent" in fired

    # huey's own handler is gone: each of its lines is written once, in the app's format.
    output = consumer.output()
    assert output.count("Huey consumer started with") == 1
    assert output.count("Periodic tasks are enabled") == 1


def test_stopped_consumer_shows_stopped_not_dead(stack, processes):
    stack.env.update(WORKER_HEARTBEAT_SECONDS="1")
    consumer = processes.consumer(stack.env, workers=2)
    wait_for(lambda: consumer_states(stack) == ["alive"], "the consumer to report in",
             logs=[consumer])
    consumer.stop(signal.SIGINT)
    wait_for(lambda: consumer_states(stack) == ["stopped"], "the consumer shown stopped",
             logs=[consumer])
