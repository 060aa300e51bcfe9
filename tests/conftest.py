"""Shared fixtures: apps on SQLite and PostgreSQL + Redis, a real gunicorn and huey_consumer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

# Tests are hermetic: the operator's settings (a REDIS_URL, a proxy count exported by a shell)
# must not change what they see. Popped before khaacho.extensions picks the queue at import.
CONTRACT_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET",
    "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_API_URL", "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_NUMBER", "TWILIO_API_URL", "TWILIO_SKIP_VALIDATION",
    "TRUSTED_PROXY_COUNT", "WEBHOOK_RATE_LIMIT_MAX", "WEBHOOK_RATE_LIMIT_WINDOW", "WEBHOOK_MAX_AGE_MINUTES",
    "TASK_MAX_RETRIES", "TASK_RETRY_BASE_SECONDS", "WEBHOOK_RETENTION_DAYS", "APP_ENV", "FLASK_ENV",
    "SWEEP_AFTER_SECONDS", "HUEY_SQLITE_PATH", "SESSION_LIFETIME_HOURS", "ALERT_WEBHOOK_URL",
    "WORKER_HEARTBEAT_SECONDS", "WORKER_SILENT_SECONDS", "ORDER_MERGE_MINUTES", "ORDER_CONFIRM_HOURS",
    "WHATSAPP_TEMPLATE_ORDER_UPDATE", "WHATSAPP_TEMPLATE_LANGUAGE", "TWILIO_CONTENT_SID_ORDER_UPDATE",
)
for _name in CONTRACT_VARIABLES:
    os.environ.pop(_name, None)

from config import TestConfig, engine_options  # noqa: E402
from khaacho import create_app  # noqa: E402
from khaacho.extensions import db  # noqa: E402
from khaacho.models import User  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
IN_CI = os.environ.get("CI", "").lower() == "true"

SECRETS = {
    "WHATSAPP_APP_SECRET": "test-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "test-verify-token",
    "WHATSAPP_ACCESS_TOKEN": "test-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "112233445566778",
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "TWILIO_AUTH_TOKEN": "test-twilio-token",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _require_service(name: str, port: int) -> None:
    if _reachable("127.0.0.1", port):
        return
    if IN_CI:
        pytest.fail(f"{name} on 127.0.0.1:{port} is unreachable; CI must run the integration tests")
    pytest.skip(f"{name} on 127.0.0.1:{port} is unreachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_config(database_url: str, **overrides) -> TestConfig:
    """A TestConfig on the given database, with the test provider secrets."""
    for key, value in SECRETS.items():
        os.environ.setdefault(key, value)
    config = TestConfig(**overrides)
    config.SQLALCHEMY_DATABASE_URI = database_url
    config.SQLALCHEMY_ENGINE_OPTIONS = engine_options(database_url)
    config.WHATSAPP_APP_SECRETS = [SECRETS["WHATSAPP_APP_SECRET"]]
    for key, value in SECRETS.items():
        if key != "WHATSAPP_APP_SECRET":
            setattr(config, key, value)
    return config


def upgrade(database_url: str) -> None:
    """Run the real migrations (``flask db upgrade``) on an empty database."""
    app = create_app(make_config(database_url))
    from flask_migrate import upgrade as alembic_upgrade

    with app.app_context():
        alembic_upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()


# --- SQLite -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "khaacho.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


# --- PostgreSQL + Redis -------------------------------------------------------------------

def _psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    _require_service("PostgreSQL", 5432)
    import psycopg

    name = f"khaacho_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(_psycopg_url(url))
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_clean_url(pg_url) -> str:
    """The session database emptied for this test."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    return pg_url


@pytest.fixture
def redis_url() -> str:
    """A Redis database emptied for this test."""
    _require_service("Redis", 6379)
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    return REDIS_TEST_URL


# --- apps ---------------------------------------------------------------------------------

def _app_for(database_url: str, **overrides):
    from tests.intake_support import RelayingClient

    app = create_app(make_config(database_url, **overrides))
    app.test_client_class = RelayingClient
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(sqlite_url):
    """The app on a fresh migrated SQLite database, Huey immediate, limiter in memory."""
    yield from _app_for(sqlite_url)


@pytest.fixture
def pg_app(pg_clean_url, redis_url):
    """The app on PostgreSQL with the rate limiter on Redis, Huey immediate."""
    yield from _app_for(
        _psycopg_url(pg_clean_url), REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request):
    """The app on each backend in turn."""
    name = "app" if request.param == "sqlite" else "pg_app"
    return request.getfixturevalue(name)


@pytest.fixture
def shop(any_app, httpserver):
    """The app on each backend, the demo catalog loaded and both providers on a loopback server."""
    from tests.processing_support import open_shop

    return open_shop(any_app, httpserver)


@pytest.fixture
def sqlite_shop(app, httpserver):
    """As ``shop``, on SQLite only, for the behaviour that does not depend on the database."""
    from tests.processing_support import open_shop

    return open_shop(app, httpserver)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create a user with a known password: ``make_user("a@x.np", role="admin")``."""

    def make(email: str = "ops@khaacho.local", password: str = "correct horse", role: str = "admin") -> User:
        from khaacho.auth.cli import create_user

        with app.app_context():
            user = create_user(email, password, role)
            db.session.commit()
            db.session.refresh(user)
            return user

    return make


def count_rows(app, table: str) -> int:
    with app.app_context():
        return db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- real processes -----------------------------------------------------------------------

class Process:
    """A child process (gunicorn or huey_consumer) with its log file."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def stop(self, sig: int = 15, timeout: float = 10) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def service_env(database_url: str, redis_url: str | None = None, **extra: str) -> dict:
    """Environment for a gunicorn or huey_consumer child: the test secrets on the given stores."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(SECRETS)
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key", "PYTHONUNBUFFERED": "1"})
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def processes(tmp_path):
    """Start gunicorn / huey_consumer children; all are stopped at the end of the test.

    ``processes.gunicorn(env, workers=2)`` returns the base URL once ``/healthz`` answers (sync
    workers as deployed; gthread ones with ``threads > 1``);
    ``processes.consumer(env, workers=2)`` returns the Process.
    """

    class Processes:
        started: list[Process] = []

        def gunicorn(self, env: dict, workers: int = 2, port: int | None = None, threads: int = 1) -> str:
            port = port or free_port()
            worker_class = "gthread" if threads > 1 else "sync"
            args = [str(VENV_BIN / "gunicorn"), "wsgi:app", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                    "-k", worker_class, "--threads", str(threads), "--graceful-timeout", "3"]
            proc = Process(args, env, tmp_path / f"gunicorn-{port}.log").start()
            self.started.append(proc)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if proc.proc.poll() is not None:
                    raise RuntimeError("gunicorn exited:\n" + proc.output())
                try:
                    if requests.get(base + "/healthz", timeout=1).ok:
                        return base
                except (requests.ConnectionError, requests.Timeout):
                    time.sleep(0.1)
            raise RuntimeError("gunicorn did not answer /healthz:\n" + proc.output())

        def consumer(self, env: dict, workers: int = 2, periodic: bool = True) -> Process:
            args = [str(VENV_BIN / "huey_consumer"), "wsgi.huey", "-w", str(workers), "-k", "thread", "-C"]
            if not periodic:
                args.append("-n")
            proc = Process(args, env, tmp_path / f"consumer-{len(self.started)}.log").start()
            self.started.append(proc)
            return proc

    procs = Processes()
    procs.started = []
    yield procs
    for proc in reversed(procs.started):
        proc.stop()
