"""Headless Chromium on the order desk: an order arrives in the live list, is confirmed and dispatched."""

from __future__ import annotations

import time

import pytest

from tests.conftest import service_env
from tests.test_browser import OUTPUT, _post_order, browser, meta_api  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _seed(app) -> None:
    from khaacho.auth.cli import create_user
    from khaacho.demo import DEMO_CATALOG
    from khaacho.extensions import db
    from khaacho.orders.catalog import import_catalog

    with app.app_context():
        import_catalog(DEMO_CATALOG)
        create_user("ops@khaacho.local", "correct horse", "admin")
        db.session.commit()


def _reload_until(page, selector: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator(selector, has_text=text).count():
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"{text!r} never appeared in {selector}")


def test_order_desk_in_a_real_browser(pg_app, pg_clean_url, redis_url, processes, browser, meta_api):  # noqa: F811
    _seed(pg_app)
    env = service_env(pg_clean_url, redis_url, WHATSAPP_API_URL=meta_api.url_for("/v21.0").rstrip("/"))
    base = processes.gunicorn(env, workers=2)
    processes.consumer(env, workers=1, periodic=False)
    OUTPUT.mkdir(exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(base + "/dashboard/orders")
    page.get_by_label("Email").fill("ops@khaacho.local")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/dashboard/orders")
    assert page.get_by_text("No orders match.").is_visible()

    # An order written in Devanagari arrives; the live list shows it without a reload.
    _post_order(base, "३ किलो चिनी\n२ किलो मसुरो दाल", "wamid.DESKBROWSER1")
    link = page.locator("#orders a", has_text="#")
    link.first.wait_for(timeout=15_000)
    row = page.locator("#orders tr", has_text="चिनी")
    row.locator(".badge--pending").wait_for(timeout=15_000)

    # Devanagari is drawn with a Devanagari font (the bundled one unless the machine has its own).
    assert page.evaluate("""async () => {
        await document.fonts.load('15px "Khaacho Devanagari"', 'चिनी');
        return document.fonts.check('15px "Khaacho Devanagari"', 'चिनी');
    }""")
    page.screenshot(path=str(OUTPUT / "desk-orders.png"), full_page=True)

    link.first.click()
    page.wait_for_url(f"{base}/dashboard/orders/*")
    assert page.locator("h1 .badge--pending").is_visible()
    page.get_by_role("button", name="Confirm for the shop").click()
    page.get_by_text("is now confirmed").wait_for(timeout=10_000)
    page.get_by_label("Note (optional)").fill("van 2, morning round")
    page.get_by_role("button", name="Dispatch").click()
    page.get_by_text("is now dispatched").wait_for(timeout=10_000)
    assert page.locator("h1 .badge--dispatched").is_visible()
    assert page.get_by_text("van 2, morning round").is_visible()

    # The notice to the shop shows in the conversation, sent by the worker.
    _reload_until(page, ".bubble--out", "status_update · sent")
    notices = page.locator(".bubble--out", has_text="status_update")
    assert notices.count() == 2
    page.screenshot(path=str(OUTPUT / "desk-order.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 375, "height": 812})
    phone.context.add_cookies(page.context.cookies())
    for path, name in ((page.url.removeprefix(base), "desk-order-375.png"),
                       ("/dashboard/orders", "desk-orders-375.png")):
        phone.goto(base + path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        phone.screenshot(path=str(OUTPUT / name), full_page=True)
    assert errors == []
