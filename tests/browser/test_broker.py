"""The broker page in Chromium: what Redis says about itself, readable in light and dark and on a phone."""
from __future__ import annotations

import pytest
import redis

from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(redis_db, database_url, run_webui):
    redis.Redis.from_url(redis_db).set("browser-test-key", "1")  # so the keys table lists this database
    process = run_webui("serve", "--broker", redis_db, "--database", database_url, "--no-enable-events")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_broker_page_shows_redis_facts_and_its_keys(page, server, redis_db, color_scheme) -> None:
    page.goto(server.url + "/broker")

    heading = page.locator("h2", has_text="Broker")
    assert heading.locator(".pill-ok").inner_text() == "reachable"
    facts = page.locator("dl.facts").inner_text()
    assert "Version" in facts and "Memory used" in facts
    assert redis_db.rsplit(":", 1)[1] in page.locator("dl.facts code").inner_text()  # port/db, no password
    db_row = page.locator("tr", has_text=f"db{redis_db.rsplit('/', 1)[1]}")
    assert db_row.count() == 1
    page.locator("#doctor-link a").click()
    page.wait_for_url("**/doctor")
    page.go_back()
    assert_no_console_problems(page)
    screenshot(page, f"broker-{color_scheme}")


def test_the_broker_page_fits_a_phone(page, server) -> None:
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(server.url + "/broker")

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_VIEWPORT["width"], f"the page scrolls sideways ({width}px)"
    assert page.locator(".pill-ok").is_visible()
    screenshot(page, "broker-phone")
