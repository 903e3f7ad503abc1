"""The queues page in Chromium: depths, a warning for a queue nobody consumes, light and dark, on a phone."""
from __future__ import annotations

import uuid

import pytest
import redis

from tests import celeryapp as tasks
from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def queues_server(worker, database_url, run_webui):
    """`webui serve` on the session worker's broker, with a queue of 3 messages that nobody consumes."""
    orphan = f"orphan-{uuid.uuid4().hex[:6]}"
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--queue-sample-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    for priority in (0, 3, 9):
        tasks.add.apply_async((1, 2), queue=orphan, priority=priority)
    wait_for(lambda: orphan in server.get("/queues").body and "celery" in server.get("/queues").body,
             timeout=30, message="the queues were never sampled")
    try:
        yield server, orphan
    finally:
        client = redis.Redis.from_url(worker.broker_url)
        client.delete(orphan, *(f"{orphan}\x06\x16{step}" for step in (3, 6, 9)))
        client.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_queues_table_shows_depths_and_warns_about_an_unconsumed_queue(page, queues_server, color_scheme):
    server, orphan = queues_server
    page.goto(f"{server.url}/queues")
    row = page.locator("tr.unattended", has_text=orphan)
    assert row.is_visible()
    assert row.locator("td.depth").inner_text().startswith("3")
    assert "no consumers" in row.inner_text()
    assert row.locator("svg.sparkline path.sparkline-line").count() == 1
    celery_row = page.locator("tbody tr", has=page.locator("a", has_text="celery")).first
    assert celery_row.locator("a.worker-link").count() >= 1 or "none" in celery_row.inner_text()
    # The warning is a colour of its own, not the page's background.
    warn_bg = row.locator("td").first.evaluate("el => getComputedStyle(el).backgroundColor")
    body_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert warn_bg != body_bg
    # htmx refreshes the table in place (the body event a live update dispatches does the same).
    with page.expect_response(lambda r: r.url.endswith("/queues") and r.request.headers.get("hx-request")):
        page.evaluate("document.body.dispatchEvent(new CustomEvent('live:queues'))")
    page.wait_for_timeout(200)
    assert page.locator("tr.unattended", has_text=orphan).is_visible()
    screenshot(page, f"queues-{color_scheme}")
    assert_no_console_problems(page)


def test_a_queue_page_shows_its_chart(page, queues_server):
    server, orphan = queues_server
    page.goto(f"{server.url}/queues")
    page.locator("a", has_text=orphan).first.click()
    page.wait_for_url(f"**/queue/{orphan}")
    assert page.locator(".chart svg.sparkline").is_visible()
    assert "p9: 1" in page.locator("dd.depth").inner_text()
    screenshot(page, "queue-detail-light")


def test_the_queues_page_is_usable_on_a_phone(page, queues_server):
    server, orphan = queues_server
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(f"{server.url}/queues")
    row = page.locator("tr.unattended", has_text=orphan)
    assert row.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    # Each row is a card: the label sits beside its value, within the screen.
    box = row.locator("td.depth").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_VIEWPORT["width"]
    screenshot(page, "queues-phone")
