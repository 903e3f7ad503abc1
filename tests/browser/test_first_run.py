"""An empty overview is never blank: it says what it is waiting for, the one-line fix, and where to read more."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests import celeryapp as tasks
from tests.browser.conftest import assert_no_console_problems, screenshot
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def silent_worker(redis_db: str, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A worker started without -E (task events off), as people often start them, on a Redis db of its own."""
    app = Celery("tests.celeryapp", broker=redis_db, backend=redis_db)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    worker = CeleryWorker(app, redis_db, tmp_path / "worker.log", name="silent@%h", task_events=False)
    worker.start()
    yield worker
    worker.stop()


def step_on(server) -> str | None:
    """The first-run step the overview shows (its docs anchor), or None when it shows none."""
    body = server.get("/").body
    marker = 'id="first-run" aria-labelledby="first-run-title" data-step="'
    return body.split(marker, 1)[1].split('"', 1)[0] if marker in body else None


def test_with_no_worker_the_overview_says_it_waits_for_one_and_how_to_start_it(page, run_webui, redis_db,
                                                                                 database_url):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    page.goto(server.url + "/")
    guidance = page.locator("#first-run")
    assert guidance.is_visible()
    assert guidance.get_attribute("data-step") == "no-workers"
    assert "none has been seen" in page.locator("#first-run-title").inner_text()
    assert "celery -A proj worker -E" in guidance.locator(".first-run-fix code").inner_text()
    assert guidance.locator(".first-run-docs").inner_text() == "docs/troubleshooting.md#no-workers"
    assert redis_db in guidance.inner_text()  # the broker it listens on: the usual mismatch is right there
    assert guidance.locator(".first-run-now").inner_text().startswith("…")
    screenshot(page, "first-run-no-workers")
    assert_no_console_problems(page)


def test_with_a_worker_but_no_task_events_it_asks_for_them_and_links_the_doctor(page, run_webui, silent_worker,
                                                                                database_url):
    server = run_webui("serve", "--broker", silent_worker.broker_url, "--database", database_url,
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    wait_for(lambda: step_on(server) == "no-task-events", timeout=30, message="the worker was never seen")
    silent_worker.app.send_task("tests.celeryapp.add", (1, 2)).get(timeout=10)  # runs, but unseen
    page.goto(server.url + "/")
    guidance = page.locator("#first-run")
    assert guidance.get_attribute("data-step") == "no-task-events"
    assert "worker_send_task_events = True" in guidance.locator(".first-run-fix code").inner_text()
    assert guidance.locator(".first-run-done").inner_text().startswith("✓")
    page.locator("#first-run a", has_text="Config doctor").click()
    page.wait_for_url("**/doctor#advice-task_events")
    assert page.locator("#advice-task_events").is_visible()
    page.go_back()
    screenshot(page, "first-run-no-task-events")
    assert_no_console_problems(page)


def test_once_tasks_are_seen_sent_and_run_the_guidance_is_gone(page, server):
    tasks.add.delay(2, 3).get(timeout=10)
    wait_for(lambda: step_on(server) is None, timeout=20, message="the guidance stayed after a task ran")
    page.goto(server.url + "/")
    assert page.locator("#first-run").count() == 0
    assert_no_console_problems(page)
