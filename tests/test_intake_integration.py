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
from huey import RedisHuey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from khaacho.webhooks.admission import LIMITER_DOWN_REASON
from tests.conftest import PG_ADMIN_URL, _psycopg_url, free_port, service_env, upgrade
from tests.support import META_PATH, meta_text_payload, signed_meta, wait_for

pytestmark = pytest.mark.integration


def post(base: str, payload: dict | bytes, timeout: float = 10) -> int:
    body, headers = signed_meta(payload)
    return requests.post(base + META_PATH, data=body, headers=headers, timeout=timeout).status_code


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


def queued_tasks(redis_url: str) -> int:
    return RedisHuey("khaacho", url=redis_url).pending_count()


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


@pytest.mark.parametrize("threads", [1, 4], ids=["sync", "gthread"])
def test_twenty_concurrent_copies_across_two_workers_give_one_row_queued_once(
        processes, pg_clean_url, own_redis, threads):
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
    assert query(pg_clean_url, "SELECT duplicate_count, status FROM webhook_messages") == [(19, "queued")]
    wait_for(lambda: queued_tasks(redis_url) == 1, "the message to be queued", timeout=5)
    time.sleep(0.2)  # longer than a batch: a second enqueue would have happened by now
    assert queued_tasks(redis_url) == 1
    assert query(pg_clean_url, "SELECT count(*) FROM webhook_signature_log WHERE is_valid") == [(20,)]


def test_rate_limit_is_shared_by_both_workers(processes, pg_clean_url, own_redis):
    redis_url = own_redis[0]
    env = service_env(pg_clean_url, redis_url, WEBHOOK_RATE_LIMIT_MAX=5)
    base = processes.gunicorn(env, workers=2)
    payloads = [meta_text_payload(f"{i} kg chini", f"wamid.shared{i}") for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(lambda p: post(base, p), payloads)) == [200] * 12

    def statuses() -> dict:
        return dict(query(pg_clean_url, "SELECT status, count(*) FROM webhook_messages GROUP BY status"))

    wait_for(lambda: statuses() == {"queued": 5, "rate_limited": 7}, "7 of 12 to be rate limited", timeout=5)
    assert query(pg_clean_url, "SELECT request_count, blocked_count FROM webhook_rate_limits") == [(12, 7)]
    assert queued_tasks(redis_url) == 5


def test_a_stopping_worker_queues_the_messages_it_still_holds(processes, pg_clean_url, own_redis):
    redis_url = own_redis[0]
    env = service_env(pg_clean_url, redis_url, WEBHOOK_ADMIT_BATCH_MS=60_000)
    base = processes.gunicorn(env, workers=1)
    assert post(base, meta_text_payload("5 kg chini", "wamid.held")) == 200
    time.sleep(0.3)
    assert queued_tasks(redis_url) == 0  # acknowledged, stored, waiting for its batch
    processes.started[-1].stop()
    assert queued_tasks(redis_url) == 1
    assert query(pg_clean_url, "SELECT status FROM webhook_messages") == [("queued",)]


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


def test_redis_taken_away_still_stores_and_answers_200(processes, pg_clean_url, own_redis):
    redis_url, redis_server = own_redis
    base = processes.gunicorn(service_env(pg_clean_url, redis_url), workers=2)
    assert post(base, meta_text_payload("5 kg chini", "wamid.before")) == 200
    wait_for(lambda: queued_tasks(redis_url) == 1, "the message to be queued", timeout=5)
    redis_server.kill()
    redis_server.wait(5)
    started = time.monotonic()
    codes = [post(base, meta_text_payload("2 kg dal", f"wamid.after{i}")) for i in range(4)]
    assert codes == [200] * 4
    assert time.monotonic() - started < 8
    assert query(pg_clean_url, "SELECT status, count(*) FROM webhook_messages GROUP BY status") == [
        ("queued", 5)]

    def reasons() -> list[tuple]:
        return query(pg_clean_url, "SELECT reason FROM webhook_signature_log ORDER BY id")

    wait_for(lambda: set(reasons()[1:]) == {(LIMITER_DOWN_REASON,)}, "the outage to be audited", timeout=8)
    assert reasons()[0] == (None,)


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
