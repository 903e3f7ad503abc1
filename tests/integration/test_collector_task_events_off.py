"""Workers started without -E: the collector turns their task events on, or says plainly that they are off."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def silent_worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """A worker without -E on a Redis database of its own (15)."""
    broker = f"{redis_url}/15"
    app = Celery("tests.celeryapp", broker=broker, backend=broker)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    log_path = tmp_path_factory.mktemp("silent-worker") / "worker.log"
    worker = CeleryWorker(app, broker, log_path, name="silent@%h", task_events=False)
    worker.start()
    yield worker
    worker.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_enable_events_the_ui_warns_that_task_events_are_off(silent_worker, database_url, store):
    app = silent_worker.app
    with running_collector(app, database_url, enable_events=False, no_task_events_warning=2.0):
        wait_for(lambda: store.rows("SELECT * FROM worker WHERE hostname = ? AND online = ?",
                                    (silent_worker.hostname, True)), message="silent worker never seen")
        for _ in range(3):
            app.send_task("tests.celeryapp.add", (1, 2)).get(timeout=10)
        status = wait_for(lambda: (store.status() or {}).get("warning") and store.status(), timeout=20,
                          message="no warning about missing task events")
    assert silent_worker.hostname in status["warning"] and "-E" in status["warning"]
    assert store.count("task") == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_enable_events_turns_task_events_on_for_workers_started_without_them(silent_worker, database_url, store):
    app = silent_worker.app
    def a_task_is_stored() -> bool:
        result = app.send_task("tests.celeryapp.add", (20, 22))
        result.get(timeout=10)
        time.sleep(0.3)  # a few write batches
        return store.state(result.id) == "SUCCESS"

    try:
        with running_collector(app, database_url, enable_events=True, enable_events_interval=1.0):
            wait_for(a_task_is_stored, timeout=30, interval=0.2, message="enable_events never took effect")
    finally:
        app.control.disable_events()  # leave the worker as we found it
    task = store.rows("SELECT * FROM task WHERE state = 'SUCCESS'")[0]
    assert task["worker"] == silent_worker.hostname and task["result"] == "42"
