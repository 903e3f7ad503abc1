"""The controls in Chromium: retry a failed task from its page and reach the new one; the worker's control
panels and a control's result, light and dark (screenshots for a human to look at)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests import celeryapp as tasks
from tests.browser.conftest import SCREENSHOTS, assert_no_console_problems, screenshot, scroll_to
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def inspected_server(worker, database_url, run_webui):
    """`webui serve` on the session worker's broker, inspecting every 5 s (the worker page's limits)."""
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--inspect-interval", "5")
    server.wait_http("/healthcheck", 200, timeout=30)
    return server


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_retrying_a_failed_task_from_its_page_leads_to_the_new_task(page, server, color_scheme):
    failed = tasks.fail.delay("retry me from the browser")
    wait_for(lambda: "FAILURE" in server.get(f"/task/{failed.id}").body, timeout=20, message="never failed")
    page.goto(f"{server.url}/task/{failed.id}")
    panel = page.locator("#task-controls")
    assert panel.is_visible() and page.locator("#retry-button").is_enabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SCREENSHOTS / f"controls-task-panel-{color_scheme}.png"))

    page.locator("#retry-button").click()
    confirm_text = page.locator("#confirm-text").inner_text()
    assert "Send tests.celeryapp.fail('retry me from the browser',) again" in confirm_text
    screenshot(page, f"controls-confirm-{color_scheme}")
    page.locator("#confirm-button").click()
    link = page.locator("#new-task a")
    new_id = link.inner_text().strip()
    assert new_id and new_id != failed.id
    screenshot(page, f"controls-retry-result-{color_scheme}")

    wait_for(lambda: "FAILURE" in server.get(f"/task/{new_id}").body, timeout=20, message="retry never ran")
    link.click()
    page.wait_for_url(f"**/task/{new_id}")
    assert page.locator(f'a[href="/task/{failed.id}"]').count() >= 1, "the new task links back to the failed one"
    assert_no_console_problems(page)


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_worker_page_shows_limits_and_operations_with_a_confirmation(page, inspected_server, worker,
                                                                        color_scheme):
    url = f"{inspected_server.url}/worker/{quote(worker.hostname)}"
    wait_for(lambda: "tests.celeryapp.add" in inspected_server.get(f"/worker/{quote(worker.hostname)}").body,
             timeout=30, message="the worker's registered tasks never arrived")
    page.goto(url)
    limits = page.locator("#worker-limits")
    assert "lost when the" in limits.inner_text() and page.locator("#worker-operations").is_visible()
    scroll_to(page, "#worker-limits")
    screenshot(page, f"controls-worker-{color_scheme}")

    form = page.locator("#op-pool_grow")
    form.locator("button").click()
    assert f"Add 1 pool process to {worker.hostname}" in page.locator("#confirm-text").inner_text()
    page.locator("#confirm-button").click()
    assert page.locator("#control-replies .reply-ok code").inner_text() == worker.hostname
    screenshot(page, f"controls-pool-grow-result-{color_scheme}")
    page.go_back()
    page.go_back()
    shrink = page.locator("#op-pool_shrink")
    shrink.locator("button").click()
    page.locator("#confirm-button").click()
    assert page.locator("#control-result").get_attribute("data-ok") == "true"
    assert_no_console_problems(page)

    def processes() -> int:
        stats = worker.app.control.inspect(destination=[worker.hostname], timeout=2).stats()
        return len(stats[worker.hostname]["pool"]["processes"])
    wait_for(lambda: processes() == 2, timeout=15, message="the session worker's pool never shrank back to -c 2")
