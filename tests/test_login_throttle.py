"""Failed sign-ins are throttled per account and IP, per IP and per account, shared by every worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from khaacho.auth import throttle
from khaacho.extensions import db
from khaacho.models import LoginAttempt, utcnow
from tests.test_auth import csrf_from, login

ATTACKER, OWNER = "203.0.113.66", "198.51.100.7"


@pytest.fixture
def owner(any_app):
    from khaacho.auth.cli import create_user

    with any_app.app_context():
        create_user("ops@khaacho.local", "correct horse", "admin")
        create_user("other@khaacho.local", "correct horse", "admin")
        db.session.commit()
    return any_app


def browser(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_five_failures_throttle_that_account_from_that_ip(owner):
    attacker = browser(owner, ATTACKER)
    for _ in range(5):
        assert login(attacker, password="guess").status_code == 200
    throttled = login(attacker)  # even the right password waits now
    assert throttled.status_code == 429
    assert "Too many failed sign-in attempts. Wait 15 minutes" in throttled.get_data(as_text=True)
    assert 840 < int(throttled.headers["Retry-After"]) <= 900
    assert login(browser(owner, ATTACKER), "other@khaacho.local").status_code == 302


def test_an_attacker_elsewhere_does_not_lock_the_owner_out(owner):
    attacker = browser(owner, ATTACKER)
    for _ in range(6):
        login(attacker, password="guess")
    assert login(attacker).status_code == 429
    assert login(browser(owner, OWNER)).status_code == 302


def test_one_ip_guessing_many_accounts_is_throttled(owner):
    attacker = browser(owner, ATTACKER)
    for i in range(throttle.IP.amount):
        assert login(attacker, f"guess{i}@khaacho.local", "guess").status_code == 200
    assert login(attacker).status_code == 429
    assert login(browser(owner, OWNER)).status_code == 302


def test_the_per_account_ceiling_stops_guesses_spread_over_many_ips(owner):
    with owner.app_context():
        now = utcnow()
        db.session.add_all(LoginAttempt(email="ops@khaacho.local", client_ip=f"192.0.2.{i % 250}",
                                        created_at=now - timedelta(seconds=i))
                           for i in range(throttle.ACCOUNT.amount))
        db.session.commit()
    refused = login(browser(owner, OWNER))
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert login(browser(owner, OWNER), "other@khaacho.local").status_code == 302


def test_failures_older_than_the_window_no_longer_count(owner):
    with owner.app_context():
        old = utcnow() - throttle.ACCOUNT_AND_IP.window - timedelta(seconds=1)
        db.session.add_all(LoginAttempt(email="ops@khaacho.local", client_ip=ATTACKER, created_at=old)
                           for _ in range(5))
        db.session.commit()
    assert login(browser(owner, ATTACKER)).status_code == 302


def test_a_successful_sign_in_clears_its_failures_and_throttled_tries_do_not_count(owner):
    client = browser(owner, OWNER)
    for _ in range(4):
        login(client, password="typo")
    assert login(client).status_code == 302
    client.post("/logout", data={"csrf_token": _token(client)})
    for _ in range(5):
        assert login(client, password="typo").status_code == 200
    for _ in range(3):
        assert login(client).status_code == 429
    with owner.app_context():
        assert db.session.query(LoginAttempt).count() == 5


def _token(client) -> str:
    from tests.test_auth import page_token

    return page_token(client)


def test_workers_share_the_count(owner):
    """Two apps on one database stand in for two workers: 3 + 2 failures make 5, embedded mode too."""
    from khaacho import create_app
    from tests.conftest import make_config

    second = create_app(make_config(owner.config["SQLALCHEMY_DATABASE_URI"]))
    try:
        for _ in range(3):
            assert login(browser(owner, ATTACKER), password="guess").status_code == 200
        for _ in range(2):
            assert login(browser(second, ATTACKER), password="guess").status_code == 200
        assert login(browser(owner, ATTACKER)).status_code == 429
        assert login(browser(second, ATTACKER)).status_code == 429
    finally:
        with second.app_context():
            db.engine.dispose()


def test_an_email_with_a_nul_is_a_bad_request_not_an_error(owner):
    response = login(browser(owner, OWNER), "ops\x00@khaacho.local")
    assert response.status_code == 400


@pytest.mark.parametrize("forwarded", ["\x00", "1.2.3.4\x00", "x" * 2048, "\x7f\x01"])
def test_a_junk_forwarded_address_is_counted_not_an_error(owner, forwarded):
    client = owner.test_client()

    def attempt(password: str):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        return client.post("/login", headers={"X-Forwarded-For": forwarded}, data={
            "email": "ops@khaacho.local", "password": password, "csrf_token": token})

    assert [attempt("guess").status_code for _ in range(5)] == [200] * 5
    assert attempt("correct horse").status_code == 429
