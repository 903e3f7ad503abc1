"""Task logs (webui.agent.logs) end to end: a real prefork worker with the companion capturing logs, real Redis,
a real collector storing them by attempt, the task page showing them. The fixtures are the companion tests'
(tests/integration/test_agent_companion.py); only the worker differs: it captures logs, capped at 20 lines."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from tests.integration import test_agent_companion as companion
from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

LOG_LINES = 20
# The companion tests' fixtures, found by name (fresh_stream then asks for this module's agent_worker).
broker, agent_redis, sender, fresh_stream, sqlite_url = (companion.broker, companion.agent_redis, companion.sender,
                                                         companion.fresh_stream, companion.sqlite_url)
send, start_worker, wait_states = companion.send, companion.start_worker, companion.wait_states


@pytest.fixture(scope="module")
def agent_worker(sender: Celery, broker: PrivateRedis, agent_redis: PrivateRedis,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """The companion tests' worker (task events off), capturing task logs."""
    worker = start_worker(sender, broker, agent_redis.url(0), tmp_path_factory.mktemp("logs") / "worker.log",
                          "logworker", task_events=False, WEBUI_AGENT_CAPTURE_LOGS="1",
                          WEBUI_AGENT_LOG_LINES=str(LOG_LINES))
    try:
        yield worker
    finally:
        worker.stop(grace=10)


def logs(store: StoreReader, uuid: str) -> list[dict[str, Any]]:
    return store.rows("SELECT l.* FROM task_log l JOIN task t ON t.id = l.task_id WHERE t.uuid = ? "
                      "ORDER BY l.attempt, l.id", (uuid,))


def wait_logs(store: StoreReader, uuid: str, count: int) -> list[dict[str, Any]]:
    return wait_for(lambda: (found := logs(store, uuid)) and len(found) >= count and found, timeout=30,
                    interval=0.2, message=f"the task's {count} log rows never arrived")


def test_a_task_s_log_lines_are_kept_with_its_attempt_once_each_and_masked(
        sender: Celery, agent_worker: CeleryWorker, fresh_stream: str, sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        uuid = send(sender, "log_lines", 3, "login with password=hunter2")
        wait_states(store, {uuid: "SUCCESS"})
        found = wait_logs(store, uuid, 3)
        assert [row["attempt"] for row in found] == [1, 1, 1]
        assert [row["seq"] for row in found] == [1, 2, 3]  # each once: the task logger and the root both saw them
        assert [row["level"] for row in found] == ["INFO", "WARNING", "INFO"]
        assert [row["logger"] for row in found] == ["tests.celeryapp", "tests.app", "tests.celeryapp"]
        assert found[0]["message"] == "login with password=*** 1 of attempt 1"  # masked like the task's args
        assert all("hunter2" not in row["message"] for row in found)
        assert found[0]["hostname"] == agent_worker.hostname
        assert [e["type"] for e in store.events(uuid)] == ["task-received", "task-started", "task-succeeded"]
        store.close()


def test_an_attempt_keeps_the_cap_and_says_how_much_it_left_out(
        sender: Celery, agent_worker: CeleryWorker, fresh_stream: str, sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        uuid = send(sender, "log_lines", LOG_LINES + 1234, "noise")
        wait_states(store, {uuid: "SUCCESS"})
        found = wait_logs(store, uuid, LOG_LINES + 1)
        kept = [row for row in found if row["omitted"] is None]
        assert len(kept) == LOG_LINES and kept[-1]["message"] == f"noise {LOG_LINES} of attempt 1"
        note = found[-1]
        assert note["omitted"] == 1234 and note["omitted_bytes"] > 1234 * len("noise 1 of attempt 1")
        store.close()


def test_a_retried_task_s_attempts_keep_separate_logs(sender: Celery, agent_worker: CeleryWorker,
                                                      fresh_stream: str, sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        uuid = send(sender, "log_and_retry")
        wait_states(store, {uuid: "SUCCESS"})
        found = wait_logs(store, uuid, 2)
        assert [(row["attempt"], row["message"]) for row in found] == [(1, "this is attempt 1"),
                                                                        (2, "this is attempt 2")]
        store.close()


def test_an_attempt_whose_worker_was_killed_keeps_what_it_logged(sender: Celery, agent_worker: CeleryWorker,
                                                                 fresh_stream: str, sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        uuid = send(sender, "log_then_die")
        found = wait_logs(store, uuid, 1)
        assert [(row["attempt"], row["level"], row["message"]) for row in found] == [
            (1, "WARNING", "last words before SIGKILL")]
        wait_for(lambda: store.state(uuid) == "FAILURE", timeout=30, message="the worker never reported the loss")
        assert len(logs(store, uuid)) == 1  # no cap note: task_postrun never ran in the killed process
        store.close()


def test_the_task_page_shows_logs_live_and_escaped(sender: Celery, agent_worker: CeleryWorker, fresh_stream: str,
                                                   sqlite_url: str, run_webui) -> None:
    server = run_webui("serve", "--broker", agent_worker.broker_url, "--database", sqlite_url, "--agent-url",
                       fresh_stream, "--batch-interval", "0.1", "--no-enable-events", "--no-reconcile")
    server.wait_http("/healthcheck", 200, timeout=30)
    uuid = send(sender, "log_lines", 3, "<script>alert('x')</script>", 1.5)

    def fragment_showing(text: str) -> str | None:
        response = server.get(f"/task/{uuid}/logs")
        return response.body if response.status == 200 and text in response.body else None

    running = wait_for(lambda: fragment_showing("1 of attempt 1"), timeout=20, interval=0.2,
                       message="the running task's log panel never showed its first line")
    assert "data-live" in running and f'hx-get="/task/{uuid}/logs"' in running  # refreshes itself while it runs
    assert "2 of attempt 1" not in running or "3 of attempt 1" not in running
    page = wait_for(lambda: (r := server.get(f"/task/{uuid}")).status == 200 and "SUCCESS" in r.body
                    and "3 of attempt 1" in r.body and r.body, timeout=20, interval=0.2,
                    message="the finished task's page never showed its three lines")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 1 of attempt 1" in page
    assert 'id="logs-attempt-1"' in page
    assert 'hx-get="/task/' + uuid + '/logs"' not in page  # finished: no more refreshing
