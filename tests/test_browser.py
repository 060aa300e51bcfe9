"""Headless Chromium against a real gunicorn + huey_consumer: log in, watch a webhook arrive, replay."""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from khaacho.extensions import db
from khaacho.models import WebhookMessage
from tests.conftest import IN_CI, ROOT, service_env
from tests.support import META_PATH, meta_text_payload, signed_meta

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu"]
OUTPUT = ROOT / "test-output"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("chromium is not installed; CI must run the browser test")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def meta_api(httpserver):
    """Meta's Graph API on loopback, so the worker's replies succeed."""
    httpserver.expect_request(re.compile(r"/v21.0/\d+/messages"), method="POST").respond_with_json(
        {"messaging_product": "whatsapp", "messages": [{"id": "wamid.BROWSERREPLY"}]})
    return httpserver


def _seed(app) -> int:
    """An admin, and a message that died an hour ago; returns the dead message's id."""
    from khaacho.auth.cli import create_user
    from khaacho.demo import DEMO_CATALOG
    from khaacho.orders.catalog import import_catalog

    with app.app_context():
        import_catalog(DEMO_CATALOG)
        create_user("ops@khaacho.local", "correct horse", "admin")
        at = datetime.now(UTC) - timedelta(hours=1)
        dead = WebhookMessage(
            message_id="wamid.DEADBROWSER", webhook_source="whatsapp", phone_number="+9779857654321",
            sender_id="+9779857654321", message_text="2 packet wai wai", status="dead", attempts=6,
            error_count=6, error_message="Meta error 131000 (HTTP 500): Something went wrong",
            payload={"id": "wamid.DEADBROWSER"}, first_received_at=at, created_at=at, updated_at=at)
        db.session.add(dead)
        db.session.commit()
        return dead.id


def _post_order(base: str, text: str, message_id: str) -> None:
    body, headers = signed_meta(meta_text_payload(text, message_id))
    response = requests.post(base + META_PATH, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_dashboard_in_a_real_browser(pg_app, pg_clean_url, redis_url, processes, browser, meta_api):
    dead_id = _seed(pg_app)
    env = service_env(pg_clean_url, redis_url, WHATSAPP_API_URL=meta_api.url_for("/v21.0").rstrip("/"))
    base = processes.gunicorn(env, workers=2)
    processes.consumer(env, workers=1, periodic=False)
    OUTPUT.mkdir(exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(base + "/dashboard")
    assert page.url.startswith(base + "/login")
    page.get_by_label("Email").fill("ops@khaacho.local")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/dashboard")
    assert page.locator(".tile").count() >= 6
    assert page.get_by_role("heading", name="Processing").is_visible()

    # A webhook arrives; the messages section refreshes itself (no reload) and shows it.
    _post_order(base, "browser test: 3 kg chini ra 2 kg dal", "wamid.BROWSER1")
    page.locator("#messages", has_text="browser test: 3 kg chini").wait_for(timeout=15_000)
    row = page.locator("#messages tr", has_text="browser test")
    row.locator(".badge--completed").wait_for(timeout=15_000)

    # One request refreshes every section: no section polls on its own.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/dashboard/" in request.url else None)
    page.wait_for_timeout(6_000)  # lets Playwright deliver the request events meanwhile
    assert polls and all("/dashboard/live" in url for url in polls) and len(polls) <= 2

    # An admin pauses replies from the Operations section; the state is shown on the page.
    page.get_by_role("button", name="Pause replies").click()
    page.locator('[data-switch="replies"] .badge', has_text="paused").wait_for(timeout=10_000)
    page.get_by_role("button", name="Resume replies").click()
    page.locator('[data-switch="replies"] .badge', has_text="running").wait_for(timeout=10_000)

    # Paused, the sections stand still; resumed, they catch up.
    page.get_by_role("button", name="Pause updates").click()
    assert page.get_by_text("Live updates are paused.").is_visible()
    _post_order(base, "paused test: 5 kg nun", "wamid.BROWSER2")
    time.sleep(6)
    assert "paused test" not in page.locator("#messages").inner_text()
    page.get_by_role("button", name="Resume updates").click()
    page.locator("#messages", has_text="paused test: 5 kg nun").wait_for(timeout=15_000)
    page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

    # Replay the dead message from its detail page; the worker then completes it.
    page.goto(f"{base}/dashboard/messages/{dead_id}")
    assert page.locator("h1 .badge--dead").is_visible()
    page.get_by_role("button", name="Replay").click()
    page.get_by_text("Re-queued 1 message").wait_for(timeout=10_000)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not page.locator("h1 .badge--completed").count():
        time.sleep(0.5)
        page.reload()
    assert page.locator("h1 .badge--completed").is_visible()
    page.screenshot(path=str(OUTPUT / "message.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 375, "height": 812})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(base + "/dashboard")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(OUTPUT / "dashboard-375.png"), full_page=True)
    assert errors == []
