"""Configuration is read from the environment and refuses values that cannot work."""

import re

import pytest

from config import Config, ConfigError, ProductionConfig, config_from_env, database_url

CONTRACT_VARIABLES = [
    "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET",
    "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_API_URL", "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_NUMBER", "TWILIO_API_URL", "TWILIO_SKIP_VALIDATION",
    "TRUSTED_PROXY_COUNT", "WEBHOOK_RATE_LIMIT_MAX", "WEBHOOK_RATE_LIMIT_WINDOW", "WEBHOOK_MAX_AGE_MINUTES",
    "TASK_MAX_RETRIES", "TASK_RETRY_BASE_SECONDS", "WEBHOOK_RETENTION_DAYS", "APP_ENV", "FLASK_ENV",
    "SESSION_LIFETIME_HOURS",
]
GOOD_KEY = "k" * 32


@pytest.fixture
def clean_env(monkeypatch):
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_contracts(clean_env):
    config = Config()
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
    assert config.REDIS_URL is None
    assert config.RATELIMIT_STORAGE_URI == "memory://"
    assert (config.WEBHOOK_RATE_LIMIT_MAX, config.WEBHOOK_RATE_LIMIT_WINDOW) == (100, 60)
    assert config.WEBHOOK_MAX_AGE_MINUTES == 1440
    assert (config.TASK_MAX_RETRIES, config.TASK_RETRY_BASE_SECONDS) == (5, 30)
    assert config.WEBHOOK_RETENTION_DAYS == 30
    assert config.TRUSTED_PROXY_COUNT == 1
    assert config.WHATSAPP_API_URL == "https://graph.facebook.com/v21.0"
    assert config.TWILIO_API_URL == "https://api.twilio.com"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEBHOOK_RATE_LIMIT_MAX", "abc", "WEBHOOK_RATE_LIMIT_MAX='abc' is not a whole number"),
        ("WEBHOOK_RATE_LIMIT_MAX", "0", "WEBHOOK_RATE_LIMIT_MAX=0 must be at least 1"),
        ("TASK_MAX_RETRIES", "-1", "TASK_MAX_RETRIES=-1 must be at least 0"),
        ("TWILIO_SKIP_VALIDATION", "maybe", "TWILIO_SKIP_VALIDATION='maybe' is not a boolean"),
        ("WHATSAPP_API_URL", "graph.facebook.com", "WHATSAPP_API_URL='graph.facebook.com' is not an http(s)"),
        ("TWILIO_API_URL", "ftp://api.twilio.com", "TWILIO_API_URL='ftp://api.twilio.com' is not an http(s)"),
        ("ALERT_WEBHOOK_URL", "https://", "ALERT_WEBHOOK_URL='https://' is not an http(s) URL"),
    ],
)
def test_bad_value_names_the_variable(clean_env, name, value, message):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@db:5432/k", "postgresql+psycopg://u:p@db:5432/k"),
        ("postgresql://u@db/k", "postgresql+psycopg://u@db/k"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_accepts_renders_postgres_scheme(raw, expected):
    assert database_url(raw) == expected


def test_app_secret_list_allows_rotation(clean_env):
    clean_env.setenv("WHATSAPP_APP_SECRET", "new-secret, old-secret")
    assert Config().WHATSAPP_APP_SECRETS == ["new-secret", "old-secret"]


def test_production_refuses_to_start_without_secrets(clean_env):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        ProductionConfig()
    clean_env.setenv("SECRET_KEY", GOOD_KEY)
    with pytest.raises(ConfigError, match="WHATSAPP_APP_SECRET or TWILIO_AUTH_TOKEN"):
        ProductionConfig()


def test_production_refuses_skipped_twilio_validation(clean_env):
    clean_env.setenv("SECRET_KEY", GOOD_KEY)
    clean_env.setenv("TWILIO_AUTH_TOKEN", "t")
    clean_env.setenv("TWILIO_SKIP_VALIDATION", "true")
    with pytest.raises(ConfigError, match="refused in production"):
        ProductionConfig()


def test_production_cookies_are_secure(clean_env):
    clean_env.setenv("SECRET_KEY", GOOD_KEY)
    clean_env.setenv("WHATSAPP_APP_SECRET", "a")
    config = ProductionConfig()
    assert config.SESSION_COOKIE_SECURE and config.SESSION_COOKIE_HTTPONLY
    assert config.REMEMBER_COOKIE_SECURE
    assert config.JSON_LOGS


def test_development_key_is_made_once_and_shared(clean_env, tmp_path, monkeypatch):
    import config as config_module

    monkeypatch.setattr(config_module, "INSTANCE_DIR", tmp_path)
    first, second = Config().SECRET_KEY, Config().SECRET_KEY
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_production_never_invents_a_key(clean_env, tmp_path, monkeypatch):
    import config as config_module

    monkeypatch.setattr(config_module, "INSTANCE_DIR", tmp_path)
    clean_env.setenv("WHATSAPP_APP_SECRET", "s")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        ProductionConfig()
    assert not (tmp_path / "secret_key").exists()
@pytest.mark.parametrize("key", ["s", "x" * 31, "é" * 15])
def test_production_refuses_a_short_secret_key(clean_env, key):
    clean_env.setenv("SECRET_KEY", key)
    clean_env.setenv("WHATSAPP_APP_SECRET", "a")
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 bytes"):
        ProductionConfig()


def test_production_takes_a_32_byte_secret_key(clean_env):
    clean_env.setenv("SECRET_KEY", "é" * 16)  # 16 characters, 32 bytes
    clean_env.setenv("WHATSAPP_APP_SECRET", "a")
    assert ProductionConfig().SECRET_KEY == "é" * 16


@pytest.mark.parametrize(("name", "value"), [
    ("APP_ENV", "prod"), ("APP_ENV", "staging"), ("FLASK_ENV", "Productoin"), ("APP_ENV", "testing"),
])
def test_an_unknown_environment_is_refused_not_run_as_development(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name}='{value}' is not a known environment"):
        config_from_env()


def test_disagreeing_environment_variables_are_refused(clean_env):
    clean_env.setenv("APP_ENV", "development")
    clean_env.setenv("FLASK_ENV", "production")
    with pytest.raises(ConfigError, match="disagree"):
        config_from_env()


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("APP_ENV", "production", ProductionConfig), ("FLASK_ENV", "PRODUCTION", ProductionConfig),
    ("APP_ENV", "development", Config),
])
def test_known_environments_pick_their_configuration(clean_env, name, value, expected):
    clean_env.setenv("SECRET_KEY", GOOD_KEY)
    clean_env.setenv("WHATSAPP_APP_SECRET", "a")
    clean_env.setenv(name, value)
    assert type(config_from_env()) is expected


def test_session_and_csrf_tokens_share_one_lifetime(clean_env):
    assert Config().PERMANENT_SESSION_LIFETIME.total_seconds() == Config().WTF_CSRF_TIME_LIMIT == 12 * 3600
    clean_env.setenv("SESSION_LIFETIME_HOURS", "8")
    config = Config()
    assert config.PERMANENT_SESSION_LIFETIME.total_seconds() == config.WTF_CSRF_TIME_LIMIT == 8 * 3600
