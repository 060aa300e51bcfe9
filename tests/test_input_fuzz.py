"""No input makes a people-facing route answer 500: huge ids, control characters, junk numbers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from khaacho.extensions import db
from khaacho.models import WebhookMessage
from tests.test_auth import page_token
from tests.test_dashboard import add_message
from tests.test_sessions import signed_in

# Every query parameter a people-facing route reads, and a few it does not.
PARAMETERS = ("status", "source", "phone", "q", "hours", "page", "next", "name", "from", "to", "id")
HUGE = 2**63


def people_routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route but the providers' webhooks, static files and sign-out."""
    skip = {"static", "auth.logout", "webhooks.meta_handshake", "webhooks.meta_webhook",
            "webhooks.twilio_webhook"}
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint not in skip
                  for method in rule.methods - {"HEAD", "OPTIONS"})


nasty_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.sampled_from(["\x00", "a\x00b", "\r\n", "/x\r\nSet-Cookie: a=b", "//evil.example", "%00", "1e400",
                     "-1", "0", str(HUGE), str(2**64), "9" * 40, "２４", "nan", "2026-02-30", "'; --"]),
)
boundary_ids = st.sampled_from([1, 2**31, 2**63 - 1, HUGE, 2**64, 10**30])
path_value = (st.one_of(boundary_ids, st.integers(min_value=0, max_value=2**70)).map(str)
              | nasty_text.filter(bool))


def fill(rule: str, value: str) -> str:
    """The rule with every ``<converter:name>`` replaced by ``value`` (URL-quoted)."""
    from urllib.parse import quote

    out, rest = "", rule
    while "<" in rest:
        head, _, tail = rest.partition("<")
        out += head
        rest = tail.partition(">")[2]
        out += quote(value, safe="")
    return out + rest


@pytest.fixture
def admin_app(any_app):
    client = signed_in(any_app)
    add_message(any_app, 1, status="completed")
    any_app.fuzz_client = client
    any_app.fuzz_token = page_token(client)
    return any_app


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.data(), value=path_value,
       params=st.dictionaries(st.sampled_from(PARAMETERS), nasty_text, max_size=4))
def test_no_input_makes_a_people_route_answer_500(admin_app, route, value, params):
    method, rule = route.draw(st.sampled_from(people_routes(admin_app)))
    client = admin_app.fuzz_client
    path = fill(rule, value)
    if method == "GET":
        response = client.get(path, query_string=params)
    else:
        response = client.post(path, query_string=params, data={**params, "csrf_token": admin_app.fuzz_token})
    assert response.status_code < 500, (method, path, params, response.status_code)
    assert client.get("/dashboard").status_code == 200  # still signed in: nothing signed the admin out


@pytest.mark.parametrize("path", [f"/dashboard/messages/{HUGE}", f"/dashboard/messages/{2**64}",
                                  "/dashboard/messages/99999999999999999999999"])
def test_a_message_id_past_bigint_is_404(admin_app, path):
    client = admin_app.fuzz_client
    assert client.get(path).status_code == 404
    assert client.post(path + "/replay", data={"csrf_token": admin_app.fuzz_token}).status_code == 404


@pytest.mark.parametrize("name", ["q", "phone"])
def test_a_nul_in_a_filter_is_ignored_not_an_error(admin_app, name):
    client = admin_app.fuzz_client
    add_message(admin_app, 2, status="dead", text="chini")
    response = client.get("/dashboard/partials/messages", query_string={name: "chi\x00ni" if name == "q"
                                                                         else "984\x001234567"})
    assert response.status_code == 200
    assert "wamid.T2" in response.get_data(as_text=True) or "chini" in response.get_data(as_text=True)
    assert client.get("/dashboard/replay", query_string={"status": "dead", name: "\x00"}).status_code == 200
    with admin_app.app_context():
        assert db.session.get(WebhookMessage, 1).status == "completed"


def test_people_pages_are_not_stored_by_browsers_but_assets_may_be(admin_app):
    client = admin_app.fuzz_client
    for path in ("/dashboard", "/dashboard/partials/health", "/dashboard/messages/1", "/login",
                 "/api/v1/whatsapp-hardened/stats"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    anonymous = admin_app.test_client()
    assert anonymous.get("/login").headers["Cache-Control"] == "no-store"
    assert "no-store" not in anonymous.get("/static/app.css").headers.get("Cache-Control", "")
