"""Configuration classes, read from the environment through small typed helpers."""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"
# APP_ENV / FLASK_ENV values and the class each selects; anything else is refused, not guessed.
KNOWN_ENVIRONMENTS = ("development", "production")
MIN_SECRET_KEY_BYTES = 32


class ConfigError(RuntimeError):
    """A configuration variable is missing or has a value that cannot be used."""


def env_str(name: str, default: str | None = None) -> str | None:
    """Return the variable stripped, or the default when unset or blank."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip()


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """Return the variable as an integer no smaller than ``minimum``."""
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable as a boolean (true/false, yes/no, 1/0, on/off)."""
    raw = env_str(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def env_url(name: str, default: str | None = None) -> str | None:
    """Return the variable as an http(s) URL without a trailing slash (a provider or receiver address)."""
    raw = env_str(name, default)
    if raw is None:
        return None
    if not raw.lower().startswith(("https://", "http://")) or len(raw.split("://", 1)[1].strip("/")) == 0:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def env_list(name: str) -> list[str]:
    """Return a comma-separated variable as a list of non-empty items."""
    raw = env_str(name, "") or ""
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_url(raw: str | None) -> str:
    """Normalise DATABASE_URL: Render's ``postgres://`` and a psycopg 3 driver."""
    if raw is None:
        INSTANCE_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{INSTANCE_DIR / 'khaacho.db'}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


def engine_options(url: str) -> dict:
    """Connection settings: a statement timeout so a stuck database cannot hold a request.

    No ``pool_pre_ping``: it is a round trip on every checkout, a fifth of the webhook's cost.
    A connection the server dropped fails its statement instead; intake answers 503 and
    invalidates it (the provider retries), and ``pool_recycle`` retires idle ones first.
    """
    if url.startswith("postgresql"):
        return {
            "pool_recycle": 1800,
            "pool_size": 5,
            "max_overflow": 5,
            "pool_timeout": 5,
            "connect_args": {
                "connect_timeout": 3,
                "options": "-c statement_timeout=5000 -c lock_timeout=3000",
            },
        }
    return {"connect_args": {"timeout": 5}}


def development_secret_key() -> str:
    """The key under ``instance/`` that every worker of this machine signs sessions with.

    Made once, by whichever process gets there first: the key is written to a private temporary
    file and linked into place, which fails for every process but one, so none reads a half-written key.
    """
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=INSTANCE_DIR, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


class Config:
    """Development defaults: the embedded mode when DATABASE_URL and REDIS_URL are unset."""

    ENV_NAME = "development"
    TESTING = False

    def __init__(self) -> None:
        self.SECRET_KEY = self.secret_key()
        self.SQLALCHEMY_DATABASE_URI = database_url(env_str("DATABASE_URL"))
        self.SQLALCHEMY_ENGINE_OPTIONS = engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.REDIS_URL = env_str("REDIS_URL")

        self.WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN")
        self.WHATSAPP_APP_SECRETS = env_list("WHATSAPP_APP_SECRET")
        self.WHATSAPP_ACCESS_TOKEN = env_str("WHATSAPP_ACCESS_TOKEN")
        self.WHATSAPP_PHONE_NUMBER_ID = env_str("WHATSAPP_PHONE_NUMBER_ID")
        self.WHATSAPP_API_URL = env_url("WHATSAPP_API_URL", "https://graph.facebook.com/v21.0")
        self.TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
        self.TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")
        self.TWILIO_WHATSAPP_NUMBER = env_str("TWILIO_WHATSAPP_NUMBER")
        self.TWILIO_API_URL = env_url("TWILIO_API_URL", "https://api.twilio.com")
        self.TWILIO_SKIP_VALIDATION = env_bool("TWILIO_SKIP_VALIDATION")

        self.TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
        self.WEBHOOK_RATE_LIMIT_MAX = env_int("WEBHOOK_RATE_LIMIT_MAX", 100, minimum=1)
        self.WEBHOOK_RATE_LIMIT_WINDOW = env_int("WEBHOOK_RATE_LIMIT_WINDOW", 60, minimum=1)
        self.WEBHOOK_MAX_AGE_MINUTES = env_int("WEBHOOK_MAX_AGE_MINUTES", 1440, minimum=1)
        self.TASK_MAX_RETRIES = env_int("TASK_MAX_RETRIES", 5)
        self.TASK_RETRY_BASE_SECONDS = env_int("TASK_RETRY_BASE_SECONDS", 30, minimum=1)
        self.SWEEP_AFTER_SECONDS = env_int("SWEEP_AFTER_SECONDS", 120, minimum=1)
        self.WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30, minimum=1)
        self.ORDER_MERGE_MINUTES = env_int("ORDER_MERGE_MINUTES", 15)
        self.ORDER_CONFIRM_HOURS = env_int("ORDER_CONFIRM_HOURS", 24, minimum=1)
        self.WHATSAPP_TEMPLATE_ORDER_UPDATE = env_str("WHATSAPP_TEMPLATE_ORDER_UPDATE")
        self.WHATSAPP_TEMPLATE_LANGUAGE = env_str("WHATSAPP_TEMPLATE_LANGUAGE", "en")
        self.TWILIO_CONTENT_SID_ORDER_UPDATE = env_str("TWILIO_CONTENT_SID_ORDER_UPDATE")
        self.ALERT_WEBHOOK_URL = env_url("ALERT_WEBHOOK_URL")
        self.WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5, minimum=1)
        self.WORKER_SILENT_SECONDS = env_int("WORKER_SILENT_SECONDS", 120, minimum=1)

        self.MAX_CONTENT_LENGTH = 4 * 1024 * 1024
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        # Short Redis timeouts: the limiter fails open rather than holding a webhook.
        redis_timeouts = {"socket_connect_timeout": 1, "socket_timeout": 1}
        self.RATELIMIT_STORAGE_OPTIONS = redis_timeouts if self.REDIS_URL else {}
        self.RATELIMIT_KEY_PREFIX = "khaacho"
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_HEADERS_ENABLED = False
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        # One lifetime for the session (absolute, from sign-in) and the CSRF tokens made in it.
        self.SESSION_LIFETIME_HOURS = env_int("SESSION_LIFETIME_HOURS", 12, minimum=1)
        self.PERMANENT_SESSION_LIFETIME = timedelta(hours=self.SESSION_LIFETIME_HOURS)
        self.WTF_CSRF_TIME_LIMIT = self.SESSION_LIFETIME_HOURS * 3600
        self.JSON_LOGS = False
        self.HUEY_IMMEDIATE = False
        self.HUEY_SQLITE_PATH = env_str("HUEY_SQLITE_PATH", str(INSTANCE_DIR / "huey.db"))
        self.validate()

    def secret_key(self) -> str | None:
        """SECRET_KEY, or in development this machine's own key under ``instance/``."""
        return env_str("SECRET_KEY") or development_secret_key()

    def validate(self) -> None:
        """Refuse settings that cannot work; overridden where stricter rules apply."""


class ProductionConfig(Config):
    """Production: PostgreSQL, Redis, JSON logs, secure cookies, secrets required."""

    ENV_NAME = "production"

    def __init__(self) -> None:
        super().__init__()
        self.JSON_LOGS = True
        self.SESSION_COOKIE_SECURE = True
        self.REMEMBER_COOKIE_SECURE = True
        self.PREFERRED_URL_SCHEME = "https"

    def secret_key(self) -> str | None:
        return env_str("SECRET_KEY")

    def validate(self) -> None:
        missing = []
        secret_key = env_str("SECRET_KEY")
        if not secret_key:
            missing.append("SECRET_KEY")
        if not (self.WHATSAPP_APP_SECRETS or self.TWILIO_AUTH_TOKEN):
            missing.append("WHATSAPP_APP_SECRET or TWILIO_AUTH_TOKEN")
        if missing:
            raise ConfigError("production needs " + " and ".join(missing))
        if len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes in production "
                              "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
        if self.TWILIO_SKIP_VALIDATION:
            raise ConfigError("TWILIO_SKIP_VALIDATION=true is refused in production")


class TestConfig(Config):
    """Unit tests: a throwaway SQLite file, Huey in immediate mode, the limiter in memory."""

    ENV_NAME = "testing"
    TESTING = True

    def secret_key(self) -> str | None:
        return "test-secret-key"

    def __init__(self, **overrides) -> None:
        super().__init__()
        self.HUEY_IMMEDIATE = True
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.RATELIMIT_STORAGE_OPTIONS = {}
        for key, value in overrides.items():
            setattr(self, key, value)


def environment_name() -> str:
    """APP_ENV and/or FLASK_ENV: known, and agreeing when both are set; development when unset."""
    found = {}
    for name in ("APP_ENV", "FLASK_ENV"):
        raw = env_str(name)
        if raw is None:
            continue
        if raw.lower() not in KNOWN_ENVIRONMENTS:
            raise ConfigError(f"{name}={raw!r} is not a known environment "
                              f"(use one of {', '.join(KNOWN_ENVIRONMENTS)})")
        found[name] = raw.lower()
    if len(set(found.values())) > 1:
        raise ConfigError(f"APP_ENV={found['APP_ENV']} and FLASK_ENV={found['FLASK_ENV']} disagree")
    return next(iter(found.values()), "development")


def config_from_env() -> Config:
    """Pick the configuration class from APP_ENV / FLASK_ENV (production, or development otherwise)."""
    return ProductionConfig() if environment_name() == "production" else Config()
