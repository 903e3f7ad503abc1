"""The overview in Chromium: cards, charts with hover values, failures and the feed, light and dark, on a phone;
and its sections refresh in place without a console error."""
from __future__ import annotations

import pytest

from tests import celeryapp as tasks
from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot, scroll_to
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def busy_server(server, database_url):
    """A server whose store has seen successes, failures (one with hostile text) and a retried task."""
    results = [tasks.add.delay(i, i) for i in range(4)] + [tasks.fail.delay(f"boom {i}") for i in range(2)]
    results += [tasks.retry_twice.delay(), tasks.fail.delay("<script>alert(1)</script>")]
    store = StoreReader(database_url)
    try:
        wait_for(lambda: all(store.state(r.id) in ("SUCCESS", "FAILURE") for r in results), timeout=30,
                 message="the tasks never finished")
    finally:
        store.close()
    wait_for(lambda: "tests.celeryapp.fail" in server.get("/").body, timeout=20, message="no failure on /")
    return server


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_overview_shows_counts_charts_failures_and_events(page, busy_server, color_scheme):
    page.goto(busy_server.url + "/")
    assert page.locator(".ov-window .card").first.is_visible()
    bars = page.locator("svg.ov-svg .bar-ok")
    assert bars.count() >= 1
    titles = page.locator("svg.ov-svg g.col title").all_text_contents()
    assert any("succeeded" in t and "UTC" in t for t in titles)
    assert page.locator("#ov-failing ~ table .ov-name").first.inner_text() == "tests.celeryapp.fail"
    assert page.locator(".ov-exc-class").first.inner_text() == "ValueError"
    assert page.locator("script:text('alert(1)')").count() == 0
    assert page.locator(".ov-feed tbody tr").count() >= 10
    screenshot(page, f"overview-{color_scheme}")
    assert_no_console_problems(page)


def test_the_sections_refresh_in_place_when_the_live_hub_says_so(page, busy_server):
    page.goto(busy_server.url + "/")
    page.evaluate("document.getElementById('overview').dataset.marker = 'old'")
    with page.expect_response(lambda r: r.url.endswith("/overview/sections")) as response:
        page.evaluate("document.body.dispatchEvent(new CustomEvent('live:overview'))")
    assert response.value.status == 200
    page.wait_for_function("document.getElementById('overview') && !document.getElementById('overview').dataset.marker")
    assert page.locator("#overview").count() == 1 and page.locator(".ov-window").count() == 3
    assert_no_console_problems(page)


def test_the_overview_fits_a_phone(page, busy_server):
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(busy_server.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    chart = page.locator("svg.ov-svg").first.bounding_box()
    assert chart["width"] > 250  # the chart stretches to the screen instead of shrinking to a strip
    screenshot(page, "overview-phone")
    screenshot(page, "overview-phone-top", full_page=False)  # legible at the phone's own size
    scroll_to(page, "#ov-failing")
    screenshot(page, "overview-phone-failures", full_page=False)
    scroll_to(page, "#ov-feed")
    screenshot(page, "overview-phone-feed", full_page=False)
