"""Reference receivers for ``bench/ack.py``, served by the same gunicorn as the project.

- ``bench.refapps:bare``: a Flask endpoint that reads the body and answers 200 (the framework's ceiling).
- ``bench.refapps:lean``: verifies the HMAC, parses, and does one ``INSERT … ON CONFLICT`` per
  message with psycopg in autocommit (the least a durable receiver can do).

Both read ``WHATSAPP_APP_SECRET`` and ``DATABASE_URL`` (lean only) from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import psycopg
from flask import Flask, request

PATH = "/api/v1/whatsapp-hardened/webhook"
LEAN_TABLE = """
CREATE TABLE IF NOT EXISTS lean_messages (
    id BIGSERIAL PRIMARY KEY,
    message_id VARCHAR(255) NOT NULL UNIQUE,
    sender VARCHAR(128) NOT NULL,
    message_text TEXT,
    payload JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
LEAN_INSERT = (
    "INSERT INTO lean_messages (message_id, sender, message_text, payload) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (message_id) DO NOTHING"
)

bare = Flask("bare")


@bare.post(PATH)
def bare_webhook() -> tuple[str, int]:
    """Read the body, answer 200."""
    request.get_data()
    return "OK", 200


lean = Flask("lean")
_secret = os.environ.get("WHATSAPP_APP_SECRET", "").encode()
_connection: psycopg.Connection | None = None


def _conn() -> psycopg.Connection:
    # One connection per worker, opened after gunicorn forks.
    global _connection
    if _connection is None or _connection.closed:
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        _connection = psycopg.connect(url, autocommit=True)
    return _connection


@lean.post(PATH)
def lean_webhook() -> tuple[str, int]:
    """Verify, parse, insert each message once."""
    body = request.get_data()
    given = request.headers.get("X-Hub-Signature-256", "").removeprefix("sha256=")
    expected = hmac.new(_secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        return "forbidden", 403
    data = json.loads(body)
    conn = _conn()
    for entry in data.get("entry", []):
        for change in entry.get("changes", []):
            for message in change.get("value", {}).get("messages", []):
                text = (message.get("text") or {}).get("body")
                conn.execute(LEAN_INSERT, (message["id"], message["from"], text, json.dumps(message)))
    return "OK", 200
