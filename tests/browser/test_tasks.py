"""The tasks page in Chromium: filtering by state swaps the list in place, pages load on demand, a new task is
announced without a reload; light and dark, and on a phone."""
from __future__ import annotations

import re

import pytest

from tests import celeryapp as tasks
from tests.browser.conftest import PHONE_VIEWPORT, assert_no_console_problems, screenshot
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def stored(server):
    """A few finished tasks: successes, a failure with a hostile argument, a retried task."""
    done = [tasks.add.delay(i, i) for i in range(4)] + [tasks.retry_twice.delay()]
    failed = tasks.fail.delay('bad input: <script>alert(1)</script>"><img src=x onerror=alert(1)>')
    for result in done:
        result.get(timeout=20)
    # Another test session may share the broker: its tasks may be listed too, ours must all be.
    wait_for(lambda: failed.id in server.get("/tasks?state=FAILURE").body
             and all(r.id in server.get("/tasks?state=SUCCESS").body for r in done),
             timeout=20, message="tasks not stored")
    return {"failed": failed.id, "done": [r.id for r in done]}


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_ticking_a_state_filters_the_list_in_place_and_keeps_the_url(page, server, stored, color_scheme):
    page.goto(f"{server.url}/tasks")
    assert page.locator("tr.task-row").count() >= 6
    assert page.locator("tr.task-row .badge.state-success").count() >= 5
    screenshot(page, f"tasks-all-{color_scheme}")

    page.locator('input[name=state][value=FAILURE]').check()
    wait_for(lambda: page.locator("tr.task-row .badge.state-success").count() == 0, timeout=10,
             message="the list was not filtered in place")

    assert re.search(r"[?&]state=FAILURE", page.url), "the filter is in the address bar, to share or reload"
    assert page.locator("tr.task-row").count() == page.locator("tr.task-row .badge.state-failure").count()
    row = page.locator("tr.task-row", has_text=stored["failed"])
    assert "<script>alert(1)</script>" in row.inner_text() and page.locator("img[src=x]").count() == 0
    screenshot(page, f"tasks-failed-{color_scheme}")
    assert_no_console_problems(page)


def test_more_appends_the_next_page_and_a_new_task_is_announced(page, server, stored):
    page.goto(f"{server.url}/tasks?limit=2")
    rows = page.locator("tr.task-row")
    assert rows.count() == 2
    page.locator("button.more").click()
    wait_for(lambda: rows.count() == 4, timeout=10, message="More did not append the next page")
    page.locator("button.more").click()
    wait_for(lambda: rows.count() == 6, timeout=10, message="More did not append the next page")
    ids = page.locator("tr.task-row code.uuid").all_inner_texts()
    assert len(set(ids)) == 6

    new = tasks.add.delay(40, 2)
    new.get(timeout=20)
    notice = page.locator("#new-tasks a.new-tasks-link")
    notice.wait_for(timeout=25_000)  # live update, or the 15 s poll when the socket is not there
    # Another test session sharing the broker may add tasks of its own: at least ours is announced.
    assert re.match(r"\d+\+? new tasks? since this page loaded", notice.inner_text())
    notice.click()
    page.wait_for_load_state()
    wait_for(lambda: new.id in page.locator("tr.task-row code.uuid").all_inner_texts()
             or (page.reload() and False), timeout=20, message="the new task is not on the first page")
    assert_no_console_problems(page)


def test_a_bad_filter_shows_its_reason(page, server, stored):
    response = page.goto(f"{server.url}/tasks?runtime_min=abc")
    assert response.status == 400
    assert "a number of seconds" in page.locator("#filter-problem").inner_text()


def test_the_page_is_usable_on_a_phone(page, server, stored):
    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto(f"{server.url}/tasks")
    assert page.locator("tr.task-row").first.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
    screenshot(page, "tasks-phone", full_page=False)
