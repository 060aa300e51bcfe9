"""``flask users`` and ``flask catalog`` commands, on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import select

from khaacho.extensions import db
from khaacho.models import ApiToken, Product, User

GOOD_CSV = "sku,name,aliases,unit,price\nSUGAR,Sugar,chini|चिनी,kg,110\nSALT,Salt,nun,packet,25\n"


def test_users_create_hashes_the_password(any_app):
    result = any_app.test_cli_runner().invoke(
        args=["users", "create", "Ops@Khaacho.np", "--password", "s3cret-pass", "--role", "admin"]
    )
    assert result.exit_code == 0, result.output
    with any_app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "ops@khaacho.np" and user.role == "admin"
        assert "s3cret-pass" not in user.password_hash
        assert user.check_password("s3cret-pass")


def test_users_create_prompts_for_the_password(runner, app):
    result = runner.invoke(
        args=["users", "create", "viewer@khaacho.np"], input="long-password\nlong-password\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(User)).role == "viewer"


def test_users_create_refuses_a_duplicate_email(runner):
    runner.invoke(args=["users", "create", "a@b.np", "--password", "password1"])
    result = runner.invoke(args=["users", "create", "A@b.np", "--password", "password1"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_users_token_is_printed_once_and_stored_hashed(runner, app):
    runner.invoke(args=["users", "create", "a@b.np", "--password", "password1", "--role", "admin"])
    result = runner.invoke(args=["users", "token", "a@b.np"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert len(token) >= 40
    with app.app_context():
        stored = db.session.scalar(select(ApiToken))
        assert stored.token_hash == ApiToken.hash(token) and token not in stored.token_hash


def test_catalog_import_upserts_by_sku(any_app, tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(GOOD_CSV, encoding="utf-8")
    runner = any_app.test_cli_runner()
    assert runner.invoke(args=["catalog", "import", str(path)]).exit_code == 0
    path.write_text(GOOD_CSV.replace("110", "115"), encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert "0 new, 2 updated" in result.output
    with any_app.app_context():
        sugar = db.session.scalar(select(Product).where(Product.sku == "SUGAR"))
        assert str(sugar.price) == "115.00"
        assert "चिनी" in sugar.aliases
        assert db.session.query(Product).count() == 2


def test_catalog_import_with_a_bad_row_imports_nothing(runner, app, tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(GOOD_CSV + "OIL,Oil,tel,litre,abc\n", encoding="utf-8")
    result = runner.invoke(args=["catalog", "import", str(path)])
    assert result.exit_code != 0
    assert "row" in result.output and "abc" in result.output
    with app.app_context():
        assert db.session.query(Product).count() == 0


def test_demo_init_loads_the_catalog_and_one_admin(runner, app):
    first = runner.invoke(args=["demo", "init"])
    assert "admin login: admin@khaacho.local" in first.output
    second = runner.invoke(args=["demo", "init"])
    assert "no admin created" in second.output
    with app.app_context():
        assert db.session.query(Product).count() >= 35
        assert db.session.query(User).count() == 1


def test_orders_parse_prints_json_items(runner):
    runner.invoke(args=["demo", "init"])
    result = runner.invoke(args=["orders", "parse", "5 kg chini, 2 packet wai wai"])
    assert result.exit_code == 0, result.output
    import json

    items = json.loads(result.output)
    assert [(i["quantity"], i["unit"]) for i in items] == [(5, "kg"), (2, "packet")]
    assert all(i["sku"] for i in items)


@pytest.mark.integration
def test_cli_works_on_an_empty_postgres_database_given_as_postgres_scheme(tmp_path):
    """The documented set-up commands on a brand-new database named with Render's scheme."""
    import subprocess
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN_URL, ROOT, VENV_BIN, _require_service, service_env

    _require_service("PostgreSQL", 5432)
    name = f"khaacho_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgres://") + f"/{name}"
        env = service_env(url)
        csv = tmp_path / "c.csv"
        csv.write_text(GOOD_CSV, encoding="utf-8")
        flask = str(VENV_BIN / "flask")
        for args in (["db", "upgrade"], ["catalog", "import", str(csv)],
                     ["users", "create", "a@b.np", "--password", "password1", "--role", "admin"]):
            done = subprocess.run([flask, "--app", "wsgi", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
        with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}") as conn:
            assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 2
            assert conn.execute("SELECT role FROM users").fetchone()[0] == "admin"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_demo_provider_accepts_replies_like_the_providers():
    from werkzeug.test import Client

    from khaacho.demo import _provider_app

    client = Client(_provider_app)
    meta = client.post("/v21.0/112233445566778/messages",
                       json={"to": "9779841234567", "text": {"body": "Order confirmed"}})
    assert meta.status_code == 200 and meta.json["messages"][0]["id"].startswith("wamid.")
    twilio = client.post("/2010-04-01/Accounts/AC1/Messages.json", data={"To": "whatsapp:+977", "Body": "ok"})
    assert twilio.status_code == 201 and twilio.json["sid"].startswith("SM")
    assert client.get("/anything").status_code == 404
