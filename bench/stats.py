"""Dashboard, order desk and stats API latency on a month of traffic: 1,000,000 messages in PostgreSQL.

Creates a throwaway database on 127.0.0.1 (dropped at the end unless ``--keep``), migrates it,
seeds 30 days of messages with their signature-log, per-minute metric and rate-limit rows using
``INSERT … SELECT generate_series`` (no network, no Python loops), then times every dashboard
partial, the whole page and the stats API for the last 24 h through the Flask test client, with
a logged-in admin session or a bearer token, and a ``/metrics`` scrape, and prints p50/p95/max
per endpoint. The order desk gets 100,000 orders (every tenth message, 5,000 shops, two or three
lines each, one confirmation reply each): its list (first page, a status, a shop, a page deep in
the past), one order's page, the CSV of one day, the shops and attention pages.

Run from the repository root:
``.venv/bin/python bench/stats.py [--rows 1000000] [--orders 100000] [--requests 20]``.
Target: p95 <= 200 ms for each, <= 100 ms for ``/metrics``.

To iterate on one query without reseeding: seed once with ``--keep``, then time chosen endpoints
against that database, e.g. ``bench/stats.py --database khaacho_bench_1a2b3c4d --only metrics``
(``--only`` matches the label or the path and may be repeated; the kept database is left as it
is, migrated to the current head first, and its "last 24 h" slides as time passes).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_MS = 200.0
TARGETS_MS = {"/metrics": 100.0}  # a Prometheus scrape
DAYS = 30
TEXTS = ["10 kg chini ra 5 kg dal", "चिया पत्ती २ प्याकेट", "1) basmati 5kg\n2) sunflower oil 2 ltr",
         "pls send 2 dozen eggs", "Noodles x 30", "salt - 10 pkt\nsoap - 6 pcs", "चामल २५ केजी",
         "namaste, aaja pasal kati baje khulcha?"]

SEED_MESSAGES = """
INSERT INTO webhook_messages (message_id, webhook_source, phone_number, sender_id, message_type,
    message_text, payload, status, response_time_ms, duplicate_count, first_received_at,
    last_duplicate_at, attempts, error_message, error_count, processed_at, updated_at, created_at)
SELECT 'wamid.BENCH' || i, src, phone, phone, 'text', body,
       json_build_object('from', phone, 'id', 'wamid.BENCH' || i, 'type', 'text',
                         'text', json_build_object('body', body)),
       status, 1.5 + (i %% 97) * 0.4, CASE WHEN i %% 17 = 0 THEN 1 ELSE 0 END, ts,
       CASE WHEN i %% 17 = 0 THEN ts + interval '20 seconds' END,
       CASE WHEN status IN ('dead') THEN 6 WHEN status = 'failed' THEN 2 WHEN status = 'completed' THEN 1
            ELSE 0 END,
       CASE WHEN status IN ('dead', 'failed') THEN 'Meta error 131000 (HTTP 500): Something went wrong' END,
       CASE WHEN status = 'dead' THEN 6 WHEN status = 'failed' THEN 2 ELSE 0 END,
       CASE WHEN status = 'completed' THEN ts + interval '2 seconds' END, ts, ts
FROM (
    SELECT i, ts, CASE WHEN i %% 5 = 0 THEN 'twilio' ELSE 'whatsapp' END AS src,
           '+97798' || lpad((i %% 5000)::text, 8, '0') AS phone,
           (%(texts)s::text[])[1 + i %% 8] AS body,
           CASE WHEN i <= 25 THEN 'queued' WHEN i <= 30 THEN 'processing'
                WHEN i %% 200 = 0 THEN 'dead' WHEN i %% 100 = 1 THEN 'failed'
                WHEN i %% 100 = 2 THEN 'rate_limited' WHEN i %% 50 = 3 THEN 'ignored'
                WHEN i %% 200 = 5 THEN 'stale' ELSE 'completed' END AS status
    FROM (SELECT i, now() - i * (make_interval(days => %(days)s) / %(rows)s) AS ts
          FROM generate_series(1, %(rows)s) AS i) AS spread
) AS m
"""

SEED_SIGNATURES = """
INSERT INTO webhook_signature_log (webhook_source, endpoint, is_valid, reason, client_ip, request_count,
    response_ms, last_seen_at, created_at)
SELECT webhook_source,
       CASE WHEN webhook_source = 'twilio' THEN '/api/v1/whatsapp-hardened/twilio/webhook'
            ELSE '/api/v1/whatsapp-hardened/webhook' END,
       true, NULL, '31.13.' || (id %% 250) || '.' || (id %% 200), 1, response_time_ms, created_at, created_at
FROM webhook_messages;
INSERT INTO webhook_signature_log (webhook_source, endpoint, is_valid, reason, client_ip, request_count,
    last_seen_at, created_at)
SELECT 'whatsapp', '/api/v1/whatsapp-hardened/webhook', false,
       CASE WHEN i %% 3 = 0 THEN 'missing signature' ELSE 'signature mismatch' END,
       '203.0.113.' || (i %% 300), 1 + i %% 10, ts, ts
FROM (SELECT i, now() - i * (make_interval(days => %(days)s) / %(invalid)s) AS ts
      FROM generate_series(1, %(invalid)s) AS i) AS spread
"""

# Per minute, per endpoint, per web worker; the histogram has one count per LATENCY_BUCKETS_MS
# bound plus the overflow bucket, summing to request_count.
SEED_METRICS = """
INSERT INTO webhook_performance_metrics (endpoint_path, webhook_source, bucket_start, request_count,
    success_count, total_ms, max_ms, histogram, created_at)
SELECT e.path, e.source, date_trunc('minute', now()) - m * interval '1 minute', 12 + m %% 7,
       12 + m %% 7 - CASE WHEN m %% 101 = 0 THEN 1 ELSE 0 END, (12 + m %% 7) * 31.5, 260 + m %% 200,
       json_build_array(1, 3, 4 + m %% 7, 2, 1, 1, 0, 0, 0, 0, 0, 0), now()
FROM generate_series(0, %(minutes)s - 1) AS m,
     (VALUES ('/api/v1/whatsapp-hardened/webhook', 'whatsapp'),
             ('/api/v1/whatsapp-hardened/twilio/webhook', 'twilio')) AS e(path, source),
     generate_series(1, 2) AS worker
"""

# As the worker's minute task leaves them: everything older than its delay folded into the
# request totals (one row per source, outcome and ack bucket), the last minutes past the watermark.
SEED_TOTALS = """
INSERT INTO metric_snapshots (name, label, value, taken_at)
SELECT 'rollup', 'audit_last_id', coalesce(max(id), 0), now() FROM webhook_signature_log
WHERE created_at < now() - interval '90 seconds';
INSERT INTO webhook_request_totals (webhook_source, outcome, bucket, request_count, total_ms)
SELECT webhook_source, CASE WHEN is_valid THEN 'accepted' ELSE 'rejected' END,
       CASE WHEN response_ms IS NULL THEN -1
            ELSE width_bucket(response_ms, ARRAY[5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 250, 500, 1000, 2500,
                                                 5000]::float8[]) END,
       sum(request_count), coalesce(sum(response_ms), 0)
FROM webhook_signature_log
WHERE id <= (SELECT value FROM metric_snapshots WHERE name = 'rollup' AND label = 'audit_last_id')
GROUP BY 1, 2, 3
"""

SHOPS = 5000
SEED_SHOPS = """
INSERT INTO shops (phone_number, profile_name, latitude, longitude, address, last_inbound_at, created_at)
SELECT '+97798' || lpad(i::text, 8, '0'), 'Pasal ' || i || CASE WHEN i %% 3 = 0 THEN ' किराना' ELSE '' END,
       27.6 + (i %% 200) * 0.001, 85.25 + (i %% 150) * 0.001, 'Ward ' || (1 + i %% 32), now(), now()
FROM generate_series(0, %(shops)s - 1) AS i
"""

# Every ``step``-th message started an order, a couple of seconds after it arrived.
SEED_ORDERS = """
INSERT INTO orders (webhook_message_id, shop_id, phone_number, status, version, language, total,
    created_at, updated_at)
SELECT m.id, s.id, m.phone_number,
       (ARRAY['delivered', 'delivered', 'delivered', 'dispatched', 'confirmed', 'cancelled', 'expired',
              'pending'])[1 + m.id %% 8], 1 + (m.id %% 7 = 0)::int, 'en', 0,
       m.created_at + interval '2 seconds', m.created_at + interval '1 hour'
FROM webhook_messages m JOIN shops s ON s.phone_number = m.phone_number
WHERE m.id %% %(step)s = 0 ORDER BY m.id LIMIT %(orders)s
"""

# Run without parameters, so ``%`` is the modulo operator as written.
SEED_ITEMS = """
INSERT INTO order_items (order_id, product_id, quantity, unit, unit_price, raw_text, webhook_message_id)
SELECT o.id, p.id, 1 + o.id % 10, p.unit, p.price, (1 + o.id % 10) || ' ' || p.unit || ' ' || p.name,
       o.webhook_message_id
FROM orders o
CROSS JOIN LATERAL (SELECT id, unit, price, name FROM products ORDER BY id
                    OFFSET (o.id % 20) LIMIT 2 + (o.id % 2)) AS p;
INSERT INTO order_items (order_id, product_id, quantity, unit, unit_price, raw_text, webhook_message_id)
SELECT o.id, NULL, 2, 'kg', NULL, '2 kg xyz masala ' || (o.id % 40), o.webhook_message_id
FROM orders o WHERE o.id % 50 = 0;
UPDATE orders SET total = t.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_items
      WHERE product_id IS NOT NULL GROUP BY order_id) AS t
WHERE t.order_id = orders.id
"""

SEED_REPLIES = """
INSERT INTO outbound_messages (webhook_message_id, order_id, shop_id, kind, provider, recipient, body, status,
    delivery_status, attempts, sent_at, created_at, updated_at)
SELECT o.webhook_message_id, o.id, o.shop_id, 'confirmation', 'whatsapp', o.phone_number,
       'Order #' || o.id || ': confirm 1, change 2, cancel 3', 'sent', 'read', 1,
       o.created_at + interval '1 second', o.created_at + interval '1 second', o.created_at
FROM orders o
"""

SEED_RATE_LIMITS = """
INSERT INTO webhook_rate_limits (phone_number, window_start, request_count, blocked_count, updated_at)
SELECT sender_id, date_trunc('hour', created_at), count(*), count(*) FILTER (WHERE status = 'rate_limited'),
       max(created_at)
FROM webhook_messages GROUP BY 1, 2
"""


def _step(conn: psycopg.Connection, label: str, sql: str, params: dict) -> None:
    started = time.perf_counter()
    conn.execute(sql, params or None)
    print(f"  {label:<28} {time.perf_counter() - started:6.1f} s", flush=True)


def seed_orders(conn: psycopg.Connection, rows: int, orders: int) -> None:
    """The demo catalog, the shops, ``orders`` orders with their lines and one reply each."""
    from khaacho.demo import DEMO_CATALOG
    from khaacho.orders.catalog_csv import load_catalog_rows

    products = load_catalog_rows(DEMO_CATALOG)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO products (sku, name, aliases, unit, price, active, updated_at) "
                        "VALUES (%(sku)s, %(name)s, %(aliases)s, %(unit)s, %(price)s, true, now())", products)
    params = {"shops": SHOPS, "orders": orders, "step": max(rows // max(orders, 1), 1)}
    _step(conn, f"{SHOPS:,} shops", SEED_SHOPS, params)
    _step(conn, f"{orders:,} orders", SEED_ORDERS, params)
    for statement, label in zip(SEED_ITEMS.split(";"), ("order lines", "unmatched lines", "order totals"),
                                strict=True):
        _step(conn, label, statement, {})
    _step(conn, "confirmation replies", SEED_REPLIES, {})


def seed(url: str, rows: int, orders: int) -> None:
    """Fill the migrated database with ``rows`` messages over the last 30 days, their side rows and orders."""
    params = {"rows": rows, "days": DAYS, "texts": TEXTS, "invalid": max(rows // 50, 1),
              "minutes": DAYS * 24 * 60}
    with psycopg.connect(url, autocommit=True) as conn:
        _step(conn, f"{rows:,} messages", SEED_MESSAGES, params)
        for statement, label in zip(SEED_SIGNATURES.split(";"), ("signature log (valid)",
                                                                  "signature log (invalid)"), strict=True):
            _step(conn, label, statement, params)
        _step(conn, "performance rollups", SEED_METRICS, params)
        _step(conn, "rate-limit windows", SEED_RATE_LIMITS, {})
        for statement, label in zip(SEED_TOTALS.split(";"), ("rollup watermark", "request totals"),
                                    strict=True):
            _step(conn, label, statement, {})
        seed_orders(conn, rows, orders)
        _step(conn, "VACUUM ANALYZE", "VACUUM ANALYZE", {})
        for table in ("webhook_messages", "webhook_signature_log", "webhook_performance_metrics",
                      "webhook_rate_limits", "orders", "order_items", "outbound_messages"):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            print(f"  {table:<28} {count:>10,} rows")


def build_app(url: str):
    """The app on the bench database, production-like except for CSRF (the bench only reads)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-for-loopback-runs-only-0123456789")
    from config import Config
    from khaacho import create_app

    config = Config()
    config.WTF_CSRF_ENABLED = False
    app = create_app(config)
    gc.freeze()  # as wsgi.py does in every gunicorn worker: the loaded app stays out of full collections
    return app


def timings(client, path: str, requests: int, headers: dict | None = None) -> list[float]:
    """Milliseconds per request for ``requests`` GETs after two warm-up requests."""
    for _ in range(2):
        response = client.get(path, headers=headers)
        body = response.get_data(as_text=True)[:300]
        assert response.status_code == 200, (path, response.status_code, body)
    result = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        response.get_data()  # a streamed body (the CSV) is produced while it is read
        result.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def measure(url: str, requests: int, only: list[str] | None = None) -> bool:
    """Time every endpoint (or those matching ``only``); True when each p95 is within the target."""
    from sqlalchemy import func, select

    from khaacho.auth.cli import create_user
    from khaacho.extensions import db
    from khaacho.models import ApiToken, Order, Shop
    from khaacho.ops import rollup

    app = build_app(url)
    with app.app_context():
        started = time.perf_counter()
        rollup.roll_up()  # the minute task: status counts for /metrics
        print(f"  {'minute task (roll-up)':<28} {time.perf_counter() - started:6.1f} s")
        email = f"bench-{uuid.uuid4().hex[:8]}@khaacho.local"  # a kept database is measured again
        user = create_user(email, "bench-password", "admin")
        token = uuid.uuid4().hex + uuid.uuid4().hex
        db.session.add(ApiToken(user=user, token_hash=ApiToken.hash(token)))
        db.session.commit()
        # An order from the middle of the month, a cursor a third of the way back, one busy shop, yesterday.
        ids = db.session.execute(select(func.min(Order.id), func.max(Order.id))).one()
        middle = (ids[0] + ids[1]) // 2
        deep = ids[1] - (ids[1] - ids[0]) // 3
        shop_phone = db.session.scalar(select(Shop.phone_number).order_by(Shop.id).offset(1234).limit(1))
        yesterday = db.session.scalar(select(func.max(Order.created_at))).date() - timedelta(days=1)
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": "bench-password"})
    assert response.status_code == 302, response.status_code
    bearer = {"Authorization": f"Bearer {token}"}
    endpoints = [
        ("partial health", "/dashboard/partials/health?hours=24", None),
        ("partial processing", "/dashboard/partials/processing?hours=24", None),
        ("partial security", "/dashboard/partials/security?hours=24", None),
        ("partial performance", "/dashboard/partials/performance?hours=24", None),
        ("partial messages", "/dashboard/partials/messages?hours=24", None),
        ("partial messages, dead", "/dashboard/partials/messages?hours=24&status=dead", None),
        ("partial messages, text", "/dashboard/partials/messages?hours=24&q=chini", None),
        ("partial messages, phone", "/dashboard/partials/messages?hours=24&phone=9800001234", None),
        ("partial messages, page 40", "/dashboard/partials/messages?hours=24&page=40", None),
        ("stats API (bearer, all)", "/api/v1/whatsapp-hardened/stats?source=all&hours=24", bearer),
        ("stats API (bearer, whatsapp)", "/api/v1/whatsapp-hardened/stats?source=whatsapp&hours=24", bearer),
        ("stats API (session)", "/api/v1/whatsapp-hardened/stats?hours=24", None),
        ("partial operations", "/dashboard/partials/operations?hours=24", None),
        ("live view (all sections)", "/dashboard/live?hours=24", None),
        ("/metrics scrape (bearer)", "/metrics", bearer),
        ("desk: orders, newest", "/dashboard/orders", None),
        ("desk: orders live refresh", "/dashboard/orders/live", None),
        ("desk: orders, delivered", "/dashboard/orders?status=delivered", None),
        ("desk: orders, one shop", f"/dashboard/orders?q={shop_phone[1:]}", None),
        ("desk: orders, shop name", "/dashboard/orders?q=Pasal+123", None),
        ("desk: orders, a day", f"/dashboard/orders?from={yesterday}&to={yesterday}", None),
        ("desk: orders, deep page", f"/dashboard/orders?before={deep}", None),
        ("desk: one order", f"/dashboard/orders/{middle}", None),
        ("desk: CSV of one day", f"/dashboard/orders.csv?from={yesterday}&to={yesterday}", None),
        ("desk: shops", "/dashboard/shops", None),
        ("desk: attention", "/dashboard/attention", None),
        ("whole /dashboard page", "/dashboard?hours=24", None),
    ]
    if only:
        endpoints = [e for e in endpoints if any(word in e[0] or word in e[1] for word in only)]
    print(f"\n{'endpoint (last 24 h)':<30} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  "
          f"target p95 <= {TARGET_MS:.0f}")
    ok = True
    for label, path, headers in endpoints:
        values = timings(client, path, requests, headers)
        p95 = percentile(values, 0.95)
        target = TARGETS_MS.get(path, TARGET_MS)
        within = p95 <= target or path.startswith(("/dashboard?", "/dashboard/live"))
        ok &= within
        verdict = "ok" if p95 <= target else ("over (all partials at once)" if within else "OVER")
        print(f"{label:<30} {statistics.median(values):8.1f} {p95:8.1f} {max(values):8.1f}  {verdict}")
    with app.app_context():
        db.engine.dispose()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to seed (at most 2,000,000)")
    parser.add_argument("--orders", type=int, default=100_000,
                        help="orders to seed (at most one per 2 messages)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per endpoint (at most 200)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--database", metavar="NAME",
                        help="time a database seeded earlier with --keep (not seeded, not dropped)")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="time only the endpoints whose label or path contains TEXT (repeatable)")
    args = parser.parse_args()
    rows, requests = min(max(args.rows, 1000), 2_000_000), min(max(args.requests, 5), 200)
    orders = min(max(args.orders, 100), rows // 2)

    from tests.conftest import upgrade

    name = args.database or f"khaacho_bench_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    if args.database:
        print(f"database {name}: kept from an earlier run, migrating to head")
        upgrade(sa_url)
        return 0 if measure(sa_url, requests, args.only) else 1
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        print(f"database {name}: migrating, seeding {rows:,} messages and {orders:,} orders over {DAYS} days")
        upgrade(sa_url)
        seed(url, rows, orders)
        ok = measure(sa_url, requests, args.only)
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
