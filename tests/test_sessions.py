"""Sessions end server-side: sign-out, password, role and deactivation refuse every older cookie."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event

from khaacho.auth import sessions
from khaacho.extensions import db
from khaacho.models import ApiToken, User, WebhookMessage
from tests.conftest import SECRETS
from tests.test_auth import login, page_token
from tests.test_dashboard import add_message

STATS = "/api/v1/whatsapp-hardened/stats"
TWILIO_WEBHOOK = "/api/v1/whatsapp-hardened/twilio/webhook"


def signed_in(app, email: str = "ops@khaacho.local", role: str = "admin"):
    """A user and a test client signed in through the real form."""
    from khaacho.auth.cli import create_user

    with app.app_context():
        create_user(email, "correct horse", role)
        db.session.commit()
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def copy_of(app, client):
    """Another browser holding the same session cookie (what an attacker copied)."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def assert_refused_everywhere(app, stolen, token: str, message_id: int) -> None:
    page = stolen.get("/dashboard")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    partial = stolen.get("/dashboard/partials/health", headers={"HX-Request": "true"})
    assert partial.status_code == 401 and partial.headers["HX-Redirect"].startswith("/login")
    assert stolen.get(STATS).status_code == 401
    replay = stolen.post(f"/dashboard/messages/{message_id}/replay", data={"csrf_token": token})
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/login")
    with app.app_context():
        assert db.session.get(WebhookMessage, message_id).status == "dead"


def test_a_cookie_copied_before_sign_out_is_refused_on_page_partial_api_and_replay(any_app):
    owner = signed_in(any_app)
    message_id = add_message(any_app, 1, status="dead", message_type="reaction")
    token = page_token(owner)
    stolen = copy_of(any_app, owner)
    assert stolen.get("/dashboard").status_code == 200
    assert stolen.get(STATS).status_code == 200

    assert owner.post("/logout", data={"csrf_token": token}).status_code == 302
    assert_refused_everywhere(any_app, stolen, token, message_id)
    assert login(owner).status_code == 302  # signing in again works, with a new session
    assert owner.get("/dashboard").status_code == 200
    assert stolen.get("/dashboard").status_code == 302


@pytest.mark.parametrize("change", ["password", "role", "deactivation"])
def test_password_role_and_deactivation_end_older_sessions(any_app, change):
    owner = signed_in(any_app)
    message_id = add_message(any_app, 1, status="dead", message_type="reaction")
    token = page_token(owner)
    with any_app.app_context():
        user = db.session.scalar(db.select(User))
        if change == "password":
            user.set_password("a new long password")
        elif change == "role":
            user.role = "viewer"
        else:
            user.active = False
        db.session.commit()
    assert_refused_everywhere(any_app, owner, token, message_id)


def test_saving_a_user_unchanged_keeps_its_sessions(any_app):
    owner = signed_in(any_app)
    with any_app.app_context():
        user = db.session.scalar(db.select(User))
        user.role, user.active = "admin", True
        db.session.commit()
    assert owner.get("/dashboard").status_code == 200


def test_sign_out_leaves_api_tokens_working(any_app):
    owner = signed_in(any_app)
    with any_app.app_context():
        user = db.session.scalar(db.select(User))
        db.session.add(ApiToken(user=user, token_hash=ApiToken.hash("a-token-for-scripts")))
        db.session.commit()
    owner.post("/logout", data={"csrf_token": page_token(owner)})
    answer = any_app.test_client().get(STATS, headers={"Authorization": "Bearer a-token-for-scripts"})
    assert answer.status_code == 200 and answer.get_json()["success"] is True


def test_a_session_expires_after_its_lifetime_however_active(any_app):
    owner = signed_in(any_app)
    owner.post("/logout", data={"csrf_token": page_token(owner)})
    assert "Expires=" in login(owner).headers["Set-Cookie"]  # the browser drops it too
    lifetime = any_app.permanent_session_lifetime.total_seconds()
    with owner.session_transaction() as session:
        session[sessions.SIGNED_IN_KEY] = int(time.time() - lifetime + 60)
    assert owner.get("/dashboard").status_code == 200
    with owner.session_transaction() as session:
        session[sessions.SIGNED_IN_KEY] = int(time.time() - lifetime - 1)
    assert owner.get("/dashboard").status_code == 302


def test_sign_out_ends_the_session_for_every_worker(any_app):
    """Two apps on one database stand in for two workers (or instances): the check is in the database."""
    from khaacho import create_app
    from tests.conftest import make_config

    owner = signed_in(any_app)
    other_worker = create_app(make_config(any_app.config["SQLALCHEMY_DATABASE_URI"]))
    try:
        stolen = copy_of(other_worker, owner)
        assert stolen.get("/dashboard").status_code == 200
        owner.post("/logout", data={"csrf_token": page_token(owner)})
        assert stolen.get("/dashboard").status_code == 302
    finally:
        with other_worker.app_context():
            db.engine.dispose()


def test_the_session_check_never_runs_for_webhooks(any_app):
    from twilio.request_validator import RequestValidator

    owner = signed_in(any_app)
    form = {"MessageSid": "SM" + "1" * 32, "From": "whatsapp:+9779841234567", "Body": "2 kg chini"}
    url = f"http://localhost{TWILIO_WEBHOOK}"
    signature = RequestValidator(SECRETS["TWILIO_AUTH_TOKEN"]).compute_signature(url, form)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with any_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        answer = owner.post(TWILIO_WEBHOOK, data=form, headers={"X-Twilio-Signature": signature})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert answer.status_code == 200
    assert not [s for s in statements if "users" in s]


def test_dashboard_replays_record_who_ran_them(any_app):
    import json

    from khaacho.models import OpsAction

    owner = signed_in(any_app, "lead@khaacho.local")
    one = add_message(any_app, 1, status="dead", message_type="reaction")
    two = add_message(any_app, 2, status="dead", message_type="reaction")
    done = add_message(any_app, 3, status="completed")
    token = page_token(owner)
    owner.post(f"/dashboard/messages/{done}/replay", data={"csrf_token": token})
    owner.post("/dashboard/replay", data={"status": "dead", "csrf_token": token})
    with any_app.app_context():
        actions = db.session.scalars(db.select(OpsAction).order_by(OpsAction.id)).all()
        assert [(a.user.email, a.action, a.order_id) for a in actions] == [
            ("lead@khaacho.local", "replay", None)] * 2
        assert json.loads(actions[0].detail) == {"queued": [], "left_alone": [done]}
        assert json.loads(actions[1].detail) == {"queued": [one, two], "left_alone": [],
                                                 "filters": {"status": "dead", "hours": 24}}


@pytest.mark.parametrize("args", [["signout"], ["password", "--password", "a new long password"],
                                  ["role", "viewer"], ["deactivate"]])
def test_user_commands_end_every_session_of_the_user(any_app, args):
    owner = signed_in(any_app)
    other = signed_in(any_app, "other@khaacho.local")
    command, *rest = args
    result = any_app.test_cli_runner().invoke(args=["users", command, "OPS@khaacho.local", *rest])
    assert result.exit_code == 0, result.output
    assert owner.get("/dashboard").status_code == 302
    assert other.get("/dashboard").status_code == 200
    if command == "password":
        assert login(any_app.test_client(), password="a new long password").status_code == 302


def test_user_commands_name_an_unknown_user(any_app):
    result = any_app.test_cli_runner().invoke(args=["users", "signout", "nobody@khaacho.local"])
    assert result.exit_code != 0 and "no user with email nobody@khaacho.local" in result.output
