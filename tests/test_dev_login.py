"""The development server as ``make run`` starts it: several workers, no SECRET_KEY set."""

from __future__ import annotations

import re

import requests

from tests.conftest import service_env


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_development_login_holds_across_four_workers(app, make_user, sqlite_url, processes):
    make_user("ops@khaacho.local", "correct horse", "admin")
    env = service_env(sqlite_url)
    del env["SECRET_KEY"]  # as `make run`: every worker reads the key made once under instance/
    base = processes.gunicorn(env, workers=4)

    session = requests.Session()
    for _ in range(6):  # each login form is likely served by another worker than its POST
        session.cookies.clear()
        form = session.get(f"{base}/login", timeout=5)
        answer = session.post(f"{base}/login", timeout=5, allow_redirects=False, data={
            "email": "ops@khaacho.local", "password": "correct horse", "csrf_token": _csrf(form.text)})
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/dashboard")
    pages = [session.get(f"{base}/dashboard", timeout=5, allow_redirects=False) for _ in range(20)]
    assert [page.status_code for page in pages] == [200] * 20
