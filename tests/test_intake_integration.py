"""Webhook intake under a real gunicorn (2 workers) on PostgreSQL + Redis, with faults injected.

Each test runs its own redis-server on a free loopback port (so it can be killed, and other test
sessions flushing the shared Redis cannot disturb the queue counts) and its own database where
it takes the database away.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from khaacho import create_app
from khaacho.extensions import db
from khaacho.models import INTAKE_CHANNEL
from khaacho.processing import relay
from khaacho.processing.senders import LIMITER_DOWN_REASON
from tests.conftest import PG_ADMIN_URL, _psycopg_url, free_port, make_config, service_env, upgrade
from tests.intake_support import hold_tasks
from tests.support import META_PATH, meta_text_payload, signed_meta

pytestmark = pytest.mark.integration


def post(base: str, payload: dict | bytes, timeout: float = 10) -> int:
    body, headers = signed_meta(payload)
    return requests.post(base + META_PATH, data=body, headers=headers, timeout=timeout).status_code


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a free loopback port: (url, process)."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url, server
    server.kill()
    server.wait(5)


@pytest.fixture
def own_database(pg_url):
    """A migrated database of this test's own, which the test may make unavailable."""
    name = f"khaacho_intake_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(_psycopg_url(url))
    yield name, url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def relays(pg_clean_url, monkeypatch):
    """``relays(n, **config)``: n apps on the test database, each relaying with its own engine and
    limiter storage as a consumer process would; their tasks are held in one in-memory queue,
    whose queued message ids ``relays.queued()`` lists (a message queued twice appears twice)."""
    apps = []

    class Relays:
        queued = None

        def __call__(self, n: int, **config) -> list:
            for _ in range(n):
                apps.append(create_app(make_config(_psycopg_url(pg_clean_url), **config)))
            self.queued = hold_tasks(monkeypatch)
            return apps[-n:]

    yield Relays()
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def race(apps: list, threads_per_app: int, batch_size: int) -> None:
    """Run ``threads_per_app`` relay threads per app at once until none finds anything left."""
    start = threading.Barrier(len(apps) * threads_per_app)
    failures = []

    def relay_until_empty(app):
        try:
            start.wait(5)
            with app.app_context():
                while relay.relay_once(batch_size):
                    pass
        except Exception as exc:  # reported below: a thread's assertion would be lost
            failures.append(exc)

    workers = [threading.Thread(target=relay_until_empty, args=(app,))
               for app in apps for _ in range(threads_per_app)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []


def store_queued(url: str, count: int, sender: str | None = None) -> list[int]:
    """``count`` stored ``queued`` messages, as intake leaves them; their ids."""
    sender_sql = "'+97798' || g" if sender is None else "%s"
    params = () if sender is None else (sender,)
    return [r[0] for r in query(
        url, "INSERT INTO webhook_messages (message_id, webhook_source, sender_id, message_type, status, "
             "duplicate_count, attempts, error_count, first_received_at, updated_at, created_at) "
             f"SELECT 'wamid.race' || g, 'whatsapp', {sender_sql}, 'text', 'queued', 0, 0, 0, "
             "now(), now(), now() "
             "FROM generate_series(1, %s) g RETURNING id", *params, count)]


def test_relays_racing_over_the_outbox_queue_each_message_exactly_once(pg_clean_url, relays):
    ids = store_queued(pg_clean_url, 2000)
    race(relays(2), threads_per_app=2, batch_size=50)  # two consumers, two relay threads each
    assert sorted(relays.queued()) == sorted(ids)
    assert query(pg_clean_url, "SELECT count(*) FROM webhook_messages WHERE relayed_at IS NULL") == [(0,)]
    assert query(pg_clean_url, "SELECT DISTINCT status FROM webhook_messages") == [("queued",)]


def test_the_sender_limit_is_shared_by_relays_through_redis(pg_clean_url, redis_url, relays):
    ids = store_queued(pg_clean_url, 40, sender="+9779841234567")
    apps = relays(2, WEBHOOK_RATE_LIMIT_MAX=10, REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url)
    race(apps, threads_per_app=2, batch_size=4)
    assert len(relays.queued()) == 10 and set(relays.queued()) <= set(ids)
    assert dict(query(pg_clean_url, "SELECT status, count(*) FROM webhook_messages GROUP BY status")) == {
        "queued": 10, "rate_limited": 30}
    assert query(pg_clean_url, "SELECT sum(blocked_count) FROM webhook_rate_limits") == [(30,)]
    assert query(pg_clean_url, "SELECT count(*) FROM webhook_messages WHERE relayed_at IS NULL") == [(0,)]


@pytest.mark.parametrize("threads", [1, 4], ids=["sync", "gthread"])
def test_twenty_concurrent_copies_across_two_workers_give_one_row_queued_once(
        processes, pg_clean_url, own_redis, relays, threads):
    redis_url = own_redis[0]
    base = processes.gunicorn(service_env(pg_clean_url, redis_url), workers=2, threads=threads)
    payload = meta_text_payload("5 kg chini, 2 packet wai wai", "wamid.concurrent1")
    start = threading.Barrier(20)

    def deliver(_):
        start.wait(5)
        return post(base, payload)

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(deliver, range(20)))
    assert codes == [200] * 20
    # (Its id need not be 1: every copy's INSERT drew from the sequence before meeting the conflict.)
    [(row_id, duplicates, status)] = query(pg_clean_url,
                                           "SELECT id, duplicate_count, status FROM webhook_messages")
    assert (duplicates, status) == (19, "queued")
    assert query(pg_clean_url, "SELECT count(*) FROM webhook_signature_log WHERE is_valid") == [(20,)]
    race(relays(1), threads_per_app=2, batch_size=10)
    assert relays.queued() == [row_id]


def test_a_new_message_wakes_a_listening_relay(pg_clean_url, processes, own_redis):
    base = processes.gunicorn(service_env(pg_clean_url, own_redis[0]), workers=1)
    with psycopg.connect(pg_clean_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {INTAKE_CHANNEL}")
        assert post(base, meta_text_payload("5 kg chini", "wamid.wake")) == 200
        assert [n.channel for n in listener.notifies(timeout=10, stop_after=1)] == [INTAKE_CHANNEL]
        assert post(base, meta_text_payload("5 kg chini", "wamid.wake")) == 200  # a redelivery
        assert list(listener.notifies(timeout=0.5)) == []  # stores nothing new: nothing to relay


@pytest.mark.parametrize("threads", [1, 4], ids=["sync", "gthread"])
def test_connections_terminated_by_the_server_are_replaced_without_a_503(
        processes, own_database, own_redis, threads):
    name, url = own_database
    base = processes.gunicorn(service_env(url, own_redis[0]), workers=2, threads=threads)
    assert [post(base, meta_text_payload("1 kg dal", f"wamid.warm{i}")) for i in range(10)] == [200] * 10
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        terminated = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
    assert terminated >= 1  # the connections the workers hold
    codes = [post(base, meta_text_payload("1 kg dal", f"wamid.after{i}")) for i in range(20)]
    assert codes == [200] * 20
    assert query(url, "SELECT count(*) FROM webhook_messages WHERE duplicate_count = 0") == [(30,)]


def test_database_taken_away_mid_traffic_answers_503_and_the_retry_is_stored_once(
        processes, own_database, own_redis):
    name, url = own_database
    base = processes.gunicorn(service_env(url, own_redis[0]), workers=2)
    answers: dict[str, list[int]] = {}
    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set() and i < 400:
            message_id = f"wamid.traffic{i}"
            answers.setdefault(message_id, []).append(post(base, meta_text_payload("1 kg dal", message_id)))
            i += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    time.sleep(0.4)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        time.sleep(1.0)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    time.sleep(0.4)
    stop.set()
    sender.join(15)

    codes = [code for codes in answers.values() for code in codes]
    assert set(codes) <= {200, 503}
    assert 503 in codes and 200 in codes
    refused = [m for m, c in answers.items() if c[-1] == 503]
    for message_id in refused:  # the provider retries what was not acknowledged
        assert post(base, meta_text_payload("1 kg dal", message_id)) == 200
    stored = dict(query(url, "SELECT message_id, duplicate_count FROM webhook_messages"))
    assert set(stored) == set(answers)
    assert all(stored[m] == 0 for m in refused)  # a 503 kept nothing: the retry is the first copy
    # Once the database is back, nothing is refused any more.
    assert [post(base, meta_text_payload("1 kg dal", f"wamid.back{i}")) for i in range(10)] == [200] * 10


def test_redis_taken_away_still_stores_and_answers_200_and_the_relay_fails_open(
        processes, pg_clean_url, own_redis, relays):
    redis_url, redis_server = own_redis
    base = processes.gunicorn(service_env(pg_clean_url, redis_url), workers=2)
    redis_server.kill()
    redis_server.wait(5)
    started = time.monotonic()
    codes = [post(base, meta_text_payload("2 kg dal", f"wamid.after{i}")) for i in range(5)]
    assert codes == [200] * 5
    assert time.monotonic() - started < 5  # no Redis on the request path: nothing to time out
    assert query(pg_clean_url, "SELECT status, count(*) FROM webhook_messages GROUP BY status") == [
        ("queued", 5)]

    apps = relays(1, REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url,
                  RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5, "socket_timeout": 0.5})
    with apps[0].app_context():
        relay.drain()
    assert len(relays.queued()) == 5  # the limit could not be checked: every message goes on
    assert query(pg_clean_url, "SELECT reason, request_count FROM webhook_signature_log "
                               "WHERE reason IS NOT NULL") == [(LIMITER_DOWN_REASON, 5)]


# Messages without any usable sender: whatever else they hold, nothing may be stored.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_junk_message = st.dictionaries(
    st.sampled_from(["id", "type", "text", "timestamp", "interactive", "location", "errors", "image"]),
    _json, max_size=6,
).flatmap(lambda m: st.sampled_from([None, 42, "", "+", "whatsapp:", "abc", "12"]).map(
    lambda sender: {**m, "from": sender}))
_junk_payload = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda messages, statuses, field: {"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [{"field": field, "value": {"messages": messages, "statuses": statuses}}]}]},
        st.lists(_junk_message, max_size=3),
        st.lists(st.dictionaries(st.text(max_size=8), _json), max_size=2),
        st.sampled_from(["messages", "statuses", "", "x"])),
)


def test_no_signed_junk_payload_causes_a_5xx_or_a_stored_row(processes, pg_clean_url, own_redis):
    base = processes.gunicorn(service_env(pg_clean_url, own_redis[0]), workers=2)
    session = requests.Session()

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_junk_payload)
    def junk_is_refused_politely(payload):
        body, headers = signed_meta(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        response = session.post(base + META_PATH, data=body, headers=headers, timeout=10)
        assert response.status_code in {200, 400}, (response.status_code, response.text)

    junk_is_refused_politely()
    assert query(pg_clean_url, "SELECT count(*) FROM webhook_messages") == [(0,)]
