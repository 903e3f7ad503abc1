"""After a blind interval the collector asks the workers and the result backend, and repairs task states."""
from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from celery import Celery

from tests import celeryapp as tasks
from tests.support.collector import running_collector
from tests.support.events import dispatcher
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for


def test_a_task_already_running_at_start_is_found_through_inspect(worker, database_url, store):
    running = tasks.sleep.delay(6)
    wait_for(lambda: running.state == "STARTED", timeout=15, message="task never started on the worker")
    with running_collector(worker.app, database_url, inspect_timeout=1.0):
        task = wait_for(lambda: store.task(running.id), timeout=10, message="running task not repaired")
        assert task["state"] == "STARTED" and task["worker"] == worker.hostname
        assert task["name"] == "tests.celeryapp.sleep" and task["args"] == "(6,)"
        assert [e["source"] for e in store.events(running.id)] == ["inspect"]
        wait_for(lambda: store.state(running.id) == "SUCCESS", timeout=15, message="task never finished")
    assert store.task(running.id)["executions"] == 1  # a repair is not another execution


def test_a_task_that_finished_while_the_collector_was_down_is_settled_from_the_backend(worker, database_url,
                                                                                       store):
    with running_collector(worker.app, database_url):
        slow = tasks.sleep.delay(3)
        wait_for(lambda: store.state(slow.id) == "STARTED", timeout=15, message="task never started")
    assert slow.get(timeout=15) == 3  # finishes while nobody listens
    with running_collector(worker.app, database_url):
        wait_for(lambda: store.state(slow.id) == "SUCCESS", timeout=15, message="not settled from the backend")
    task = store.task(slow.id)
    assert task["result"] == "3"
    assert store.events(slow.id)[-1]["source"] == "backend"
    assert [g["kind"] for g in store.gaps()] == ["collector-down"]


@pytest.fixture
def doomed_worker(redis_url: str, tmp_path) -> Iterator[CeleryWorker]:
    broker = f"{redis_url}/14"
    app = Celery("tests.celeryapp", broker=broker, backend=broker)
    worker = CeleryWorker(app, broker, tmp_path / "doomed.log", name="doomed@%h")
    worker.start()
    yield worker
    worker.stop(grace=0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_worker_goes_offline_after_its_missed_heartbeats(doomed_worker, database_url, store):
    host = doomed_worker.hostname
    with running_collector(doomed_worker.app, database_url, worker_offline_heartbeats=3.0):
        wait_for(lambda: store.rows("SELECT * FROM worker WHERE hostname = ? AND online = ?", (host, True)),
                 timeout=15, message="worker never online")
        doomed_worker.process.kill(signal.SIGKILL)  # no worker-offline is sent
        row = wait_for(lambda: store.rows("SELECT * FROM worker WHERE hostname = ? AND online = ?", (host, False)),
                       timeout=15, message="killed worker never marked offline")[0]
    assert row["offline_reason"] == "heartbeat timeout"
    assert row["status_changed_at"] - row["last_seen"] >= 6.0 - 0.5  # 3 intervals of 2 s, not one
    transitions = store.rows("SELECT online, reason FROM worker_event ORDER BY id")
    assert [(bool(t["online"]), t["reason"]) for t in transitions][-1] == (False, "heartbeat timeout")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_task_nobody_can_account_for_after_a_gap_is_shown_unknown_since_not_running(redis_db, database_url,
                                                                                       store):
    from webui.app import create_app
    from webui.settings import default_settings

    app = Celery(broker=redis_db)  # no result backend, and the worker below is gone: nothing can settle it
    with running_collector(app, database_url):
        with dispatcher(redis_db, hostname="ghost@nowhere") as d:
            d.send("task-received", uuid="ghost-task", name="proj.report", args="()", kwargs="{}", retries=0)
            d.send("task-started", uuid="ghost-task")
        wait_for(lambda: store.state("ghost-task") == "STARTED", timeout=15, message="task never stored")
    with running_collector(app, database_url, inspect_timeout=0.5):
        wait_for(lambda: "unknown_since" in (store.task("ghost-task")["detail"] or ""), timeout=15,
                 message="the unaccounted-for task was not marked")
        assert store.state("ghost-task") == "STARTED"  # its state is never guessed
        assert store.events("ghost-task")[-1]["source"] == "reconcile"
        web = create_app(default_settings(broker="memory://", database=database_url, insecure_no_auth=True,
                                          alert_default_rules=False), start_collector=False).test_client()
        assert 'id="unknown-since"' in web.get("/task/ghost-task").get_data(as_text=True)
        assert "unknown since" in web.get("/tasks").get_data(as_text=True)
        assert web.get("/api/v1/tasks/ghost-task").get_json()["unknown_since"] is not None
        with dispatcher(redis_db, hostname="ghost@nowhere") as d:
            d.send("task-succeeded", uuid="ghost-task", result="1", runtime=1.0)
        wait_for(lambda: store.state("ghost-task") == "SUCCESS", timeout=15, message="late outcome not stored")
        assert "unknown_since" not in (store.task("ghost-task")["detail"] or "")
        assert web.get("/api/v1/tasks/ghost-task").get_json()["unknown_since"] is None
