"""Real workers lose a task and run one twice; the store and the detectors say so.

Each test starts workers of its own on a Redis server of its own (the session worker is never killed; no other
test session can flush its database or share its channels), and a `webui serve` with fast liveness: workers
heartbeat every second, are offline after 2 missed heartbeats, and the lost-task marker runs every second.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests import dupapp
from tests.support.processes import CeleryWorker, WebuiProcess
from tests.support.store import StoreReader
from tests.support.waiting import wait_for
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors


class OwnWorker(CeleryWorker):
    """A worker of `module`, `-c 1`, heartbeating every second, named for this test only."""

    def __init__(self, module: str, *args, **kwargs) -> None:
        self.module = module
        super().__init__(*args, **kwargs)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", self.module, "worker", "-E", "-P", "prefork", "-c", "1",
                "--without-mingle", "--without-gossip", "--heartbeat-interval", "1", "-n", self.name, "-l", "info"]

    def kill_group(self) -> None:
        """SIGKILL the main process and its pool children at once: no worker-offline, no task event."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def broker(private_redis) -> str:
    return private_redis.url(0)


@pytest.fixture
def own_workers(tmp_path: Path) -> Iterator[list[OwnWorker]]:
    """Workers a test starts itself; each is stopped (SIGKILL after 1 s) at teardown."""
    started: list[OwnWorker] = []
    yield started
    for worker in started:
        worker.stop(grace=1)


def start_worker(own_workers: list[OwnWorker], module: str, app, broker_url: str, tmp_path: Path,
                 label: str) -> OwnWorker:
    worker = OwnWorker(module, app, broker_url, tmp_path / f"{label}.log", name=f"{label}-{os.getpid()}@%h")
    own_workers.append(worker)
    return worker.start()


def serve(run_webui: Callable[..., WebuiProcess], broker_url: str, database_url: str, *app: str) -> WebuiProcess:
    process = run_webui("serve", *app, "--broker", broker_url, "--database", database_url, "--batch-interval",
                        "0.1", "--no-enable-events", "--worker-offline-heartbeats", "2", "--detect-interval", "1")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process


def test_a_task_whose_worker_is_killed_becomes_lost_and_the_worker_offline(
        broker, database_url, run_webui, own_workers, store: StoreReader, tmp_path) -> None:
    app = Celery("lost-test", broker=broker, backend=broker, set_as_current=False)  # not the session's app
    server = serve(run_webui, broker, database_url)
    worker = start_worker(own_workers, "tests.celeryapp", app, broker, tmp_path, "doomed")
    result = app.send_task("tests.celeryapp.sleep", args=(30,))
    wait_for(lambda: store.state(result.id) == "STARTED", timeout=15, message="the task never started")

    worker.kill_group()
    killed_at = time.monotonic()

    def worker_row() -> dict:
        return store.rows("SELECT online, offline_reason FROM worker WHERE hostname = ?", (worker.hostname,))[0]
    wait_for(lambda: not worker_row()["online"], timeout=20, interval=0.2, message="the worker never went offline")
    offline_after = time.monotonic() - killed_at
    wait_for(lambda: store.state(result.id) == "LOST", timeout=20, interval=0.2,
             message="the task was never marked LOST")
    lost_after = time.monotonic() - killed_at
    print(f"worker offline {offline_after:.1f} s and task LOST {lost_after:.1f} s after SIGKILL")

    assert worker_row()["offline_reason"] == "heartbeat timeout"
    task = store.task(result.id)
    assert task["worker"] == worker.hostname and task["detail"]["lost_worker"] == worker.hostname
    assert task["failed_at"] is None and task["exception"] is None
    verdict = store.events(result.id)[-1]
    assert (verdict["type"], verdict["source"], verdict["hostname"]) == ("task-lost", "detector", worker.hostname)
    # Offline after 2 missed 1 s heartbeats (on the writer's 1 s sweep), lost one window later, on a 1 s pass,
    # once inspect confirmed it (the worker does not answer, nobody lists the task): 9-10 s on a quiet machine.
    assert offline_after < 5 and lost_after < 15

    page = server.get(f"/task/{result.id}").body
    assert "badge state-lost" in page and 'id="lost-warning"' in page and "the monitor&#39;s verdict" in page
    # The evidence: heartbeats, confirmed by the workers' answers (webui.detect.lost_confirm).
    assert 'id="lost-evidence"' in page and f"confirmed: {worker.hostname} did not answer" in page
    assert result.id in server.get("/tasks?state=LOST").body
    assert result.id not in server.get("/tasks?state=FAILURE").body
    found = all_detectors()["task_lost"].run(DetectContext(store.db, time.time(), None), {"window_minutes": 60})
    assert [f.subject for f in found] == [result.id]
    assert f"was running on {worker.hostname} when it went offline" in found[0].summary


def test_a_task_redelivered_after_the_visibility_timeout_is_flagged_as_a_duplicate(
        broker, database_url, run_webui, own_workers, store: StoreReader, tmp_path) -> None:
    app = dupapp.make_app(broker)
    serve(run_webui, broker, database_url, "-A", "tests.dupapp")
    first = start_worker(own_workers, "tests.dupapp", app, broker, tmp_path, "dup-a")
    second = start_worker(own_workers, "tests.dupapp", app, broker, tmp_path, "dup-b")
    result = app.send_task("tests.dupapp.slow_acked_late", args=(6,))

    def started_twice() -> list[str]:
        hosts = [e["hostname"] for e in store.events(result.id) if e["type"] == "task-started"]
        return hosts if len(hosts) >= 2 else []
    hosts = wait_for(started_twice, timeout=20, interval=0.2, message="the task was never delivered twice")

    assert set(hosts[:2]) == {first.hostname, second.hostname}
    task = store.task(result.id)
    assert task["executions"] >= 2 and task["retries"] == 0
    found = all_detectors()["task_duplicate"].run(DetectContext(store.db, time.time(), None, celery_app=app),
                                                  {"window_minutes": 60})
    assert [f.subject for f in found] == [result.id]
    assert found[0].detail["cause"] == "visibility_timeout"
    assert "Redis visibility_timeout (2 s) shorter than the task's runtime" in found[0].summary
