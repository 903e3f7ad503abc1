"""The "expect progress every N s" promise end to end: a real prefork worker with the companion installed (task
events off), real Redis, a real `webui serve` reading the companion's stream, and the stalled-task detector on
the store it fills. A task that promised progress every 2 s and went silent is stalled once its promise breaks
(2 s + the 5 s grace after its last report), long before any guessed threshold; one that keeps reporting is not.
The task page and the API judge the promise with the grace of the stalled-task rule."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from celery import Celery

from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis, start_private_redis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for
from webui.api.openapi import document
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors
from webui.progress_promise import GRACE_SECONDS

PROMISE = 2.0  # tests.celeryapp.promise_then_sleep and promise_and_keep_it


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    with start_private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def sender(redis_server: PrivateRedis) -> Celery:
    return Celery("promise-tests", broker=redis_server.url(1), backend=redis_server.url(1),
                  broker_transport_options={"visibility_timeout": 3600})


@pytest.fixture(scope="module")
def agent_worker(sender: Celery, redis_server: PrivateRedis,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """A prefork worker (-c 2) without task events, its companion writing to db 0 of the same Redis."""
    worker = CeleryWorker(sender, redis_server.url(1), tmp_path_factory.mktemp("promise") / "worker.log",
                          name=f"promiseworker-{os.getpid()}@%h", task_events=False,
                          env={"WEBUI_AGENT_URL": redis_server.url(0)})
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(grace=10)


def stalled(store: StoreReader) -> dict[str, dict]:
    detector = all_detectors()["task_stalled"]
    with store.db.connection_context():
        found = detector.run(DetectContext(store.db, time.time(), None), detector.resolve_params({}))
    return {f.subject: {"summary": f.summary, **f.detail} for f in found}


def test_a_silent_task_is_stalled_once_its_promise_breaks_and_a_reporting_one_is_not(
        sender: Celery, agent_worker: CeleryWorker, redis_server: PrivateRedis, tmp_path: Path, run_webui) -> None:
    database = f"sqlite:///{tmp_path / 'webui.sqlite3'}"
    server = run_webui("serve", "--broker", agent_worker.broker_url, "--database", database, "--agent-url",
                       redis_server.url(0), "--batch-interval", "0.1", "--no-enable-events", "--no-reconcile")
    server.wait_http("/healthcheck", 200, timeout=30)
    store = StoreReader(database)
    try:
        silent = str(sender.send_task("tests.celeryapp.promise_then_sleep", (2, 25)).id)
        keeper = str(sender.send_task("tests.celeryapp.promise_and_keep_it", (20, 1.2)).id)
        wait_for(lambda: store.state(silent) == "STARTED" and store.state(keeper) == "STARTED", timeout=30,
                 interval=0.2, message="the two tasks never started")

        def silent_is_stalled() -> dict | None:
            found = stalled(store)
            assert keeper not in found, found[keeper]["summary"]  # it keeps its promise: never stalled
            return found.get(silent)

        finding = wait_for(silent_is_stalled, timeout=30, interval=0.3, message="the broken promise was never seen")
        task = store.task(silent)
        assert task is not None and task["progress_every"] == PROMISE and task["detail"]["progress"]["current"] == 2
        # Not before its time: the last report is the second one, and the silence since is past 2 s + the grace.
        assert finding["last_progress_at"] == task["detail"]["progress"]["at"]
        assert finding["silent_seconds"] > PROMISE + GRACE_SECONDS
        assert finding["silent_seconds"] < PROMISE + GRACE_SECONDS + 5  # and not long after (the poll, the pass)
        assert finding["basis"] == "promise"
        assert "promised progress every 2 s; none for" in finding["summary"]

        page = server.get(f"/task/{silent}").body
        assert 'id="task-progress-promise" class="promise-broken">promised progress every 2 s; none for' in page
        detail = server.get(f"/api/v1/tasks/{silent}").json()
        jsonschema.Draft202012Validator({**document()["components"]["schemas"]["TaskDetail"],
                                         "components": document()["components"]}).validate(detail)
        assert detail["progress_promise"]["every"] == PROMISE and detail["progress_promise"]["broken"] is True
        assert detail["last_progress_at"] == task["detail"]["progress"]["at"]
        kept = server.get(f"/api/v1/tasks/{keeper}").json()["progress_promise"]
        assert kept["broken"] is False and kept["silent_seconds"] < PROMISE + GRACE_SECONDS
        # The stalled-task rule allows 10 minutes' grace: no alert for a while, and the page and API say the same.
        store.execute("UPDATE alert_rule SET params = ? WHERE detector = 'task_stalled'",
                      ('{"promise_grace_seconds": 600}',))
        lenient = server.get(f"/api/v1/tasks/{silent}").json()["progress_promise"]
        assert (lenient["grace_seconds"], lenient["broken"]) == (600, False), lenient
        assert 'id="task-progress-promise" class="muted">promised progress every 2 s; last' in \
            server.get(f"/task/{silent}").body

        def keeper_done() -> bool:
            assert keeper not in stalled(store)
            return store.state(keeper) == "SUCCESS"

        wait_for(keeper_done, timeout=40, interval=0.3, message="the reporting task never finished")
        assert stalled(store).get(silent) is not None  # still silent, still running
    finally:
        store.close()
