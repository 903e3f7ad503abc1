"""Progress and logs in Chromium: a running task's bar on the tasks list, its progress and its log on the task
page, the log growing live while it runs. A real worker runs the companion with capture_logs (the fixtures of
tests/integration/test_agent_logs.py); the server reads the companion's stream, task events off."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import assert_no_console_problems, screenshot
from tests.integration import test_agent_logs as logs_tests
from tests.support.waiting import wait_for

# The companion tests' fixtures, found by name: a worker capturing logs, its Redis, an emptied stream.
broker, agent_redis, sender, fresh_stream, agent_worker = (logs_tests.broker, logs_tests.agent_redis,
                                                           logs_tests.sender, logs_tests.fresh_stream,
                                                           logs_tests.agent_worker)
STEPS, PAUSE = 6, 1.5


@pytest.fixture
def server(agent_worker, fresh_stream, tmp_path, run_webui):
    process = run_webui("serve", "--broker", agent_worker.broker_url, "--database",
                        f"sqlite:///{tmp_path / 'webui.sqlite3'}", "--agent-url", fresh_stream,
                        "--batch-interval", "0.1", "--no-enable-events", "--no-reconcile")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process


def test_progress_on_the_list_and_the_page_and_the_log_growing_live(page, server, sender):
    uuid = logs_tests.send(sender, "progress_steps", STEPS, PAUSE)
    wait_for(lambda: "step 1 of 6 done" in server.get(f"/task/{uuid}").body, timeout=20, interval=0.2,
             message="the task's first log line never reached its page")

    page.goto(server.url + "/tasks")
    bar = page.locator(f"tr.task-row:has(code.uuid:text('{uuid}')) progress.row-progress")
    bar.wait_for(state="visible", timeout=10_000)
    assert float(bar.get_attribute("max")) == STEPS and 1 <= float(bar.get_attribute("value")) < STEPS
    screenshot(page, "tasks-running-progress")

    page.goto(f"{server.url}/task/{uuid}")
    assert page.locator("#task-progress progress").is_visible()
    assert "Estimated finish" in page.locator("#task-progress").inner_text()
    log = page.locator("#logs-attempt-1 pre.task-log")
    first = log.inner_text()
    assert "step 1 of 6 done" in first and f"step {STEPS} of 6 done" not in first
    screenshot(page, "task_detail-running-logs")
    # No reload: the panel refreshes itself on the live updates until the last line is in.
    expect(log).to_contain_text(f"step {STEPS} of 6 done", timeout=(STEPS * PAUSE + 15) * 1000)
    lines = log.inner_text().splitlines()
    assert [line.split("INFO tests.celeryapp ")[-1] for line in lines] == [
        f"step {n} of 6 done" for n in range(1, STEPS + 1)]
    assert all(line.startswith("+") for line in lines)  # each with its offset from the attempt's first line
    screenshot(page, "task_detail-finished-logs")
    assert_no_console_problems(page)
