"""The events page in Chromium: a task's events appear live without a reload; paused, a counter says how many
wait; light, dark and on a phone."""
from __future__ import annotations

import re

import pytest

from tests import celeryapp as tasks
from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def open_events(page, server):
    page.goto(f"{server.url}/events")
    page.locator("#live-toggle[data-state=live]").wait_for(timeout=10000)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_events_arrive_live_and_wait_while_paused(page, server, color_scheme):
    open_events(page, server)
    assert page.locator("#live-toggle").inner_text() == "Live"
    page.evaluate("window.__marker = 'same document'")  # gone if the page reloads
    result = tasks.fail.delay('<script>alert(1)</script>"><img src=x onerror=alert(1)>')
    row = page.locator(f"tr.event-row:has(code.event-uuid:text-is('{result.id}')) .etype-task-failed")
    row.wait_for(timeout=20000)
    assert page.evaluate("window.__marker") == "same document"
    assert page.locator("img[src=x]").count() == 0
    assert page.locator(f"tr.event-row:has-text('{result.id}')").count() == 4

    page.locator("#events-pause").click()
    assert page.locator("#events-pause").inner_text() == "Resume"
    waiting = page.locator("#events-waiting")
    second = tasks.add.delay(1, 1)
    page.locator("#events-waiting", has_text=re.compile(r"^\d+\+? new events? waiting$")).wait_for(timeout=20000)
    assert page.locator(f"tr.event-row:has-text('{second.id}')").count() == 0  # paused: nothing was added
    screenshot(page, f"events-paused-{color_scheme}")
    page.locator("#events-pause").click()
    page.locator(f"tr.event-row:has-text('{second.id}')").first.wait_for(timeout=10000)
    assert waiting.is_hidden()
    screenshot(page, f"events-{color_scheme}")
    assert_no_console_problems(page)


def test_the_page_is_usable_on_a_phone(page, server):
    page.set_viewport_size(PHONE_VIEWPORT)
    result = tasks.fail.delay("x" * 300)  # long fields must wrap or fold, not widen the page
    open_events(page, server)
    page.locator(f"tr.event-row:has-text('{result.id}') .etype-task-failed").wait_for(timeout=20000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    details = page.locator(f"tr.event-row:has-text('{result.id}') details").first
    details.locator("summary").click()
    assert details.locator("pre").is_visible()
    screenshot(page, "events-phone")
