"""The beat pages in Chromium: every state readable at a glance, the strip of fires, light and dark, on a phone.

The store is filled as the beat watcher would have filled it (tests.support.beat_store), and the server runs
without a collector, so nothing rewrites that evidence while the pages are looked at.
"""
from __future__ import annotations

import pytest

from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.beat_store import HOSTILE, fill_board

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def beat_server(database_url, run_webui):
    ids = fill_board(database_url)
    server = run_webui("serve", "--broker", "memory://", "--database", database_url, "--no-embedded-collector",
                       "--beat-interval", "5")
    server.wait_http("/beat", 200, timeout=30)
    return server, ids


def colour(locator) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor + ' ' + getComputedStyle(el).color")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_beat_page_shows_each_state_in_its_colour(page, beat_server, color_scheme):
    server, ids = beat_server
    page.goto(f"{server.url}/beat")
    assert page.locator("#beat-liveness").inner_text() == "Beat is up"
    missed = page.locator("tr.beat-row-missed", has_text="nightly-report")
    late = page.locator("tr.beat-row-late", has_text="refresh-rates")
    on_time = page.locator("tr.beat-row-on-time", has_text="sync-invoices")
    assert missed.is_visible() and late.is_visible() and on_time.is_visible()
    states = [colour(row.locator(".beat-state")) for row in (missed, late, on_time)]
    assert len(set(states)) == 3, states  # red, amber and green differ
    assert on_time.locator(".fire-strip .fire").count() == 12
    assert on_time.locator(".fire-strip .fire-bad").count() == 1
    assert page.locator("tr", has_text="warm-cache").locator(".beat-warning").inner_text().startswith("drift")
    assert page.locator("tr", has_text="cleanup-sessions").locator(".beat-warning").inner_text() == "too often"
    # The hostile entry is text, and the source that failed says why.
    assert page.locator("img[src=x]").count() == 0
    assert HOSTILE in page.locator("td.entry-name a").all_inner_texts()
    assert "Could not read it: ConnectionError" in page.locator(".source-error-text").inner_text()
    # Removed entries wait behind a summary.
    removed = page.locator("details.beat-removed")
    assert not removed.locator("table").is_visible()
    removed.locator("summary").click()
    assert removed.locator("td.entry-name", has_text="old-digest").is_visible()
    # htmx refreshes the board in place from the same template's block.
    with page.expect_response(lambda r: "/beat" in r.url and r.request.headers.get("hx-request"), timeout=15000):
        pass
    page.wait_for_timeout(200)
    assert page.locator("tr.beat-row-missed", has_text="nightly-report").is_visible()
    screenshot(page, f"beat-{color_scheme}")
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_an_entry_page_shows_its_definition_and_fire_history(page, beat_server, color_scheme):
    server, ids = beat_server
    page.goto(f"{server.url}/beat")
    page.locator("a", has_text="sync-invoices").click()
    page.wait_for_url(f"**/beat/{ids['on_time']}")
    assert "on time" in page.locator(".beat-title").inner_text()
    assert '"batch": 500' in page.locator("pre.args").nth(1).inner_text()
    assert page.locator(".beat-fires tbody tr").count() == 12
    failed = page.locator(".beat-fires tbody tr", has=page.locator(".badge.state-failure"))
    assert failed.count() == 1
    failed.locator("td.task-id a").click()
    page.wait_for_url("**/task/**")
    screenshot(page, f"beat-task-from-fire-{color_scheme}")
    page.goto(f"{server.url}/beat/{ids['too_often']}")
    assert "two beat processes" in page.locator(".beat-notes").inner_text()
    assert "early" in page.locator(".beat-fires tbody tr").first.inner_text()
    screenshot(page, f"beat-entry-too-often-{color_scheme}")
    page.goto(f"{server.url}/beat/{ids['missed']}")
    screenshot(page, f"beat-entry-{color_scheme}")
    assert_no_console_problems(page)


def test_the_beat_pages_are_usable_on_a_phone(page, beat_server):
    server, ids = beat_server
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(f"{server.url}/beat")
    row = page.locator("tr.beat-row-missed", has_text="nightly-report")
    assert row.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    box = row.locator(".beat-state").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_VIEWPORT["width"]
    screenshot(page, "beat-phone")
    page.goto(f"{server.url}/beat/{ids['hostile']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    assert HOSTILE in page.locator(".entry-title").inner_text()
    screenshot(page, "beat-entry-hostile-phone")
    page.goto(f"{server.url}/beat/{ids['on_time']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    screenshot(page, "beat-entry-phone")
    assert_no_console_problems(page)
