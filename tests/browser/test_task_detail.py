"""The task page in Chromium: a failed task's traceback is visible and copyable, light and dark, on a phone."""
from __future__ import annotations

import pytest

from tests import celeryapp as tasks
from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)



def task_url(server, task_id: str, state: str) -> str:
    wait_for(lambda: state in server.get(f"/task/{task_id}").body, timeout=20,
             message=f"{state} never reached the page of {task_id}")
    return f"{server.url}/task/{task_id}"


@pytest.fixture
def failed_task_url(server) -> str:
    """The page of a task that failed with a hostile argument."""
    result = tasks.fail.delay('bad input: <script>alert(1)</script>"><img src=x onerror=alert(1)>')
    return task_url(server, result.id, "FAILURE")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_a_failed_tasks_traceback_is_visible_with_a_copy_button(page, failed_task_url, color_scheme):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(failed_task_url)
    traceback = page.locator("#traceback")
    assert traceback.is_visible()
    assert "Traceback (most recent call last)" in traceback.inner_text()
    assert "ValueError" in page.locator("#exception").inner_text()
    button = page.locator('button.copy[data-copy-target="#traceback"]')
    assert button.is_visible()
    button.click()
    page.wait_for_function("document.querySelector('button.copy[data-copy-target=\"#traceback\"]')"
                           ".textContent === 'Copied'")
    assert "Traceback (most recent call last)" in page.evaluate("navigator.clipboard.readText()")
    # The hostile argument is text on the page, not an element.
    assert page.locator("img[src=x]").count() == 0
    assert "<script>alert(1)</script>" in page.locator("#task-args").inner_text()
    assert page.locator(".attempt-head").first.inner_text().startswith("Attempt 1")
    screenshot(page, f"task_detail-failed-{color_scheme}")
    assert_no_console_problems(page)


def test_the_page_is_usable_on_a_phone(page, failed_task_url):
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(failed_task_url)
    assert page.locator("#traceback").is_visible()
    # Facts stack: the label sits above its value instead of beside it.
    label, value = page.locator(".task-facts dt").first, page.locator(".task-facts dd").first
    assert value.bounding_box()["y"] > label.bounding_box()["y"]
    # Nothing is wider than the screen, the timeline included.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    timeline = page.locator(".timeline")
    assert timeline.evaluate("el => el.scrollWidth <= el.clientWidth")
    screenshot(page, "task_detail-failed-phone")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_a_retried_task_shows_its_attempts_with_each_retrys_traceback(page, server, database_url, color_scheme):
    result = tasks.retry_twice.delay()
    url = task_url(server, result.id, "SUCCESS")
    store = StoreReader(database_url)
    try:  # as if the collector had been restarted while the first retry waited
        sent_at = store.task(result.id)["sent_at"]
        store.execute("INSERT INTO collector_gap (started_at, ended_at, kind, reason) VALUES (?, ?, ?, ?)",
                      (sent_at + 0.02, sent_at + 0.05, "collector-down", "collector restarted"))
    finally:
        store.db.close()
    page.goto(url)
    assert "Monitor was blind from" in page.locator(".gap-row").inner_text()
    assert page.locator(".attempt-head").all_inner_texts()[0].startswith("Attempt 1")
    assert page.locator(".attempt-head").count() == 3
    retry = page.locator(".event-retried details").first
    retry.locator("summary").click()
    assert retry.locator("pre").is_visible()
    screenshot(page, f"task_detail-retried-{color_scheme}")


def test_an_unknown_task_says_so(page, server):
    response = page.goto(f"{server.url}/task/0b4c1e5e-3f55-4e0f-9c56-6f1f7d6a3b2a")
    assert response is not None and response.status == 404
    assert "unknown to this monitor" in page.locator("h1").inner_text()
    screenshot(page, "task_detail-unknown")
