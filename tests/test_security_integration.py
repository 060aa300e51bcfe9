"""Sign-in limits and sign-out across the workers of a real gunicorn in the embedded mode (SQLite)."""

from __future__ import annotations

import pytest
import requests

from khaacho.extensions import db
from tests.conftest import make_config, service_env
from tests.test_auth import csrf_from

pytestmark = pytest.mark.integration
ATTEMPTS = 12  # sync workers take a new connection per request, so these spread over both workers


@pytest.fixture
def embedded(sqlite_url, processes, tmp_path) -> str:
    """Two sync gunicorn workers on one SQLite file, no Redis; one admin user."""
    from khaacho import create_app
    from khaacho.auth.cli import create_user

    app = create_app(make_config(sqlite_url))
    with app.app_context():
        create_user("ops@khaacho.local", "correct horse", "admin")
        db.session.commit()
        db.engine.dispose()
    env = service_env(sqlite_url, None, HUEY_SQLITE_PATH=str(tmp_path / "huey.db"))
    return processes.gunicorn(env, workers=2)


def sign_in(base: str, password: str = "correct horse") -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    token = csrf_from(browser.get(f"{base}/login", timeout=10).text)
    answer = browser.post(f"{base}/login", data={"email": "ops@khaacho.local", "password": password,
                                                 "csrf_token": token}, allow_redirects=False, timeout=10)
    return browser, answer


def test_failed_sign_ins_are_counted_across_workers(embedded):
    codes = [sign_in(embedded, "guess")[1].status_code for _ in range(ATTEMPTS)]
    assert codes == [200] * 5 + [429] * (ATTEMPTS - 5)


def test_sign_out_on_one_worker_ends_the_session_on_every_worker(embedded):
    owner, answer = sign_in(embedded)
    assert answer.status_code == 302
    stolen = requests.Session()
    stolen.cookies.update(owner.cookies)
    assert all(stolen.get(f"{embedded}/dashboard", allow_redirects=False, timeout=10).status_code == 200
               for _ in range(4))
    token = csrf_from(owner.get(f"{embedded}/dashboard", timeout=10).text)
    assert owner.post(f"{embedded}/logout", data={"csrf_token": token}, allow_redirects=False,
                      timeout=10).status_code == 302
    assert {stolen.get(f"{embedded}/dashboard", allow_redirects=False, timeout=10).status_code
            for _ in range(ATTEMPTS)} == {302}
