"""Login, logout, CSRF and throttled failed logins."""

from __future__ import annotations

import re

import pytest

from khaacho.extensions import db
from khaacho.models import User

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1) or match.group(2)


def login(client, email: str = "ops@khaacho.local", password: str = "correct horse", next_url: str = ""):
    """Sign in through the real form (CSRF token included); returns the POST response."""
    page = client.get("/login")
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": email, "password": password,
                                  "csrf_token": csrf_from(page.get_data(as_text=True))})


def page_token(client, path: str = "/dashboard") -> str:
    """A CSRF token for this session, read from a page that has forms."""
    return csrf_from(client.get(path).get_data(as_text=True))


def test_login_page_has_the_contract_fields(client):
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for name in ("email", "password", "csrf_token"):
        assert f'name="{name}"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_valid_login_opens_the_dashboard_with_a_safe_cookie(client, make_user):
    make_user("ops@khaacho.local", role="viewer")
    response = login(client, "OPS@khaacho.local")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/dashboard").status_code == 200


def test_login_goes_back_to_next_but_never_off_site(client, make_user):
    make_user()
    assert login(client, next_url="/dashboard/messages/1").headers["Location"] == "/dashboard/messages/1"
    client.post("/logout", data={"csrf_token": page_token(client)})
    assert login(client, next_url="//evil.example/x").headers["Location"] == "/dashboard"


@pytest.mark.parametrize("target", [
    "//evil.example/x", "/\\evil.example", "https://evil.example/", "/dash%0d%0aSet-Cookie:x=1",
    "/dashboard%0aX: y", "/%09/evil.example", "javascript:alert(1)", "/d%00x", "/é",
])
def test_next_never_leaves_the_site_nor_splits_the_header(client, make_user, target):
    make_user()
    response = login(client, next_url=target)
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    again = client.get(f"/login?next={target}")  # signed in already: the same rule
    assert again.status_code == 302 and again.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("email,password", [
    ("ops@khaacho.local", "wrong password"),
    ("nobody@khaacho.local", "correct horse"),
])
def test_bad_credentials_get_one_vague_answer(client, make_user, email, password):
    make_user()
    response = login(client, email, password)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Invalid email or password." in html
    assert "no such user" not in html.lower()
    assert client.get("/dashboard").status_code == 302


def test_deactivated_user_cannot_log_in(app, client, make_user):
    user = make_user()
    with app.app_context():
        db.session.get(User, user.id).active = False
        db.session.commit()
    assert "Invalid email or password." in login(client).get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, make_user):
    make_user()
    response = client.post("/login", data={"email": "ops@khaacho.local", "password": "correct horse"})
    assert response.status_code == 400
    assert client.get("/dashboard").status_code == 302


def test_logout_needs_post_and_csrf_then_ends_the_session(client, make_user):
    make_user()
    login(client)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/dashboard").status_code == 200
    response = client.post("/logout", data={"csrf_token": page_token(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/dashboard").status_code == 302


def test_successful_logins_do_not_use_up_the_allowance(client, make_user):
    make_user()
    for _ in range(7):
        assert login(client).status_code == 302
        client.post("/logout", data={"csrf_token": page_token(client)})
    assert login(client).status_code == 302
