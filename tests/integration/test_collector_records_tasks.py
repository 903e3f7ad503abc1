"""A real worker runs tasks that succeed, fail, retry, get revoked and kill their own process: the store
holds each one's outcome and its whole timeline, on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest

from tests import celeryapp as tasks
from tests.support.collector import running_collector
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

FINISHED = ("SUCCESS", "FAILURE", "REVOKED")


def wait_finished(store: StoreReader, *task_ids: str, timeout: float = 30.0) -> None:
    def finished() -> bool:
        return all(store.state(t) in FINISHED for t in task_ids)

    wait_for(finished, timeout=timeout, message=f"tasks not finished: {[store.state(t) for t in task_ids]}")


def event_types(store: StoreReader, task_id: str) -> list[str]:
    """The types of the events that came from the stream (a reconciliation may add repairs, marked as such)."""
    return [e["type"] for e in store.events(task_id) if e["source"] is None]


def test_every_kind_of_outcome_is_stored_with_its_timeline(worker, database_url, store):
    with running_collector(worker.app, database_url):
        ok = tasks.add.delay(2, 3)
        failed = tasks.fail.delay("boom")
        retried = tasks.retry_twice.delay()
        killed = tasks.kill_self.delay()
        running = tasks.sleep.delay(30)
        wait_for(lambda: store.state(running.id) == "STARTED", timeout=20, message="sleep task never started")
        worker.app.control.revoke(running.id, terminate=True)
        wait_finished(store, ok.id, failed.id, retried.id, killed.id, running.id)

    task = store.task(ok.id)
    assert task["state"] == "SUCCESS" and task["name"] == "tests.celeryapp.add"
    assert task["args"] == "(2, 3)" and task["result"] == "5" and task["worker"] == worker.hostname
    assert task["queue"] == "celery" and task["routing_key"] == "celery"
    assert task["root_id"] is None and task["parent_id"] is None  # its own root, not part of a workflow
    assert task["received_at"] <= task["started_at"] <= task["succeeded_at"]
    # The client sends task-sent after publishing, so the worker may receive the task a moment earlier.
    assert abs(task["received_at"] - task["sent_at"]) < 5
    assert task["runtime"] > 0
    # task-sent comes from this process, the rest from the worker: their arrival order may differ.
    assert sorted(event_types(store, ok.id)) == ["task-received", "task-sent", "task-started", "task-succeeded"]

    task = store.task(failed.id)
    assert task["state"] == "FAILURE" and task["exception"] == "ValueError('boom')"
    assert "Traceback (most recent call last)" in task["traceback"] and "ValueError: boom" in task["traceback"]

    task = store.task(retried.id)
    assert task["state"] == "SUCCESS" and task["retries"] == 2 and task["executions"] == 3
    assert task["result"] == "'done after 2 retries'" and task["exception"] is None
    types = event_types(store, retried.id)
    assert types.count("task-retried") == 2 and types.count("task-started") == 3
    assert types.count("task-received") == 3
    retries_events = [e for e in store.events(retried.id) if e["type"] == "task-retried" and e["source"] is None]
    assert len(retries_events) == 2
    assert all("Retry in" in e["data"]["traceback"] for e in retries_events)

    task = store.task(killed.id)
    assert task["state"] == "FAILURE"
    assert "WorkerLostError" in task["traceback"] and "SIGKILL" in task["traceback"]

    task = store.task(running.id)
    assert task["state"] == "REVOKED" and task["detail"]["terminated"] is True
    assert task["detail"]["signum"] == 15 and task["revoked_at"] >= task["started_at"]


def test_the_worker_is_stored_online_with_its_heartbeat_details(worker, database_url, store):
    with running_collector(worker.app, database_url):
        row = wait_for(lambda: store.rows("SELECT * FROM worker WHERE hostname = ? AND online = ?",
                                          (worker.hostname, True)), timeout=10, message="worker never online")[0]
    assert row["pid"] == worker.pid and row["freq"] == 2.0 and row["sw_ident"] == "py-celery"
    assert row["processed"] is not None and row["active"] is not None
    assert row["last_heartbeat"] is not None and row["status_changed_at"] is not None


def test_sensitive_arguments_are_masked_before_they_are_written(worker, database_url, store):
    with running_collector(worker.app, database_url):
        result = tasks.echo.delay("4111 1111 1111 1111", user="bob", password="hunter2")
        wait_finished(store, result.id)
    task = store.task(result.id)
    stored = " ".join(str(v) for v in task.values())
    assert "hunter2" not in stored and "4111 1111 1111 1111" not in stored
    assert "'user': 'bob'" in task["kwargs"] and "'password': '***'" in task["kwargs"]
    everything = " ".join(str(e) for e in store.events(result.id))
    assert "hunter2" not in everything


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nothing_is_stored_of_arguments_or_results_when_told_so(worker, database_url, store):
    with running_collector(worker.app, database_url, store_args=False, store_results=False):
        result = tasks.add.delay("secret-arg-a", "secret-arg-b")
        wait_finished(store, result.id)
    task = store.task(result.id)
    assert task["args"] is None and task["kwargs"] is None and task["result"] is None
    assert task["state"] == "SUCCESS" and task["name"] == "tests.celeryapp.add"
    assert "secret-arg" not in str(store.events(result.id))
