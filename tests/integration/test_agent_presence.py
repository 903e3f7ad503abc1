"""A worker SIGKILLed while running a task: LOST within seconds from the companion's running-task mark, or,
without the companion, from heartbeats once the workers have confirmed nobody runs it. Real prefork workers,
real Redis, a real collector; the fixtures are test_agent_companion's."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from celery import Celery

from tests.integration.test_agent_companion import agent_redis, broker, send, sender, sqlite_url, start_worker  # noqa: F401
from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for
from webui.agent.presence import key
from webui.detect import lost_confirm


def kill_worker(worker: CeleryWorker) -> float:
    """SIGKILL the worker's whole process group (its pool children too, as an OOM kill of the pod would)."""
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    return time.time()


def lost_reason(store: StoreReader, uuid: str) -> str:
    return str(((store.task(uuid) or {}).get("detail") or {}).get("lost_reason"))


def test_a_killed_workers_task_is_lost_within_10_s_from_the_companions_mark(
        sender: Celery, broker: PrivateRedis, agent_redis: PrivateRedis, sqlite_url: str,  # noqa: F811
        tmp_path: Path) -> None:
    worker = start_worker(sender, broker, agent_redis.url(2), tmp_path / "worker.log", "presence", task_events=False)
    try:
        with running_collector(sender, sqlite_url, agent_url=agent_redis.url(2), reconcile=False):
            store = StoreReader(sqlite_url)
            uuid = send(sender, "sleep", 120)
            wait_for(lambda: store.state(uuid) == "STARTED", timeout=20, message="the task never started")
            client = agent_redis.client(2)
            mark = wait_for(lambda: client.get(key(worker.hostname)), timeout=5, message="no mark")
            wait_for(lambda: uuid in json.loads(client.get(key(worker.hostname)) or "{}").get("tasks", []),
                     timeout=5, message=f"the mark never listed the running task: {mark!r}")
            assert 0 < client.pttl(key(worker.hostname)) <= 6000
            killed_at = kill_worker(worker)
            wait_for(lambda: store.state(uuid) == "LOST", timeout=10, interval=0.1,
                     message="the task was not LOST within 10 s of the kill")
            elapsed = time.time() - killed_at
            print(f"LOST {elapsed:.1f} s after the SIGKILL")
            reason = lost_reason(store, uuid)
            assert reason.startswith("the companion's liveness mark stopped at "), reason
            assert "it was listed as running" in reason
    finally:
        if worker.process is not None and worker.process.alive:
            kill_worker(worker)


def test_without_the_companion_heartbeat_verdicts_are_confirmed_by_the_workers(
        sender: Celery, broker: PrivateRedis, sqlite_url: str, tmp_path: Path) -> None:  # noqa: F811
    worker = CeleryWorker(sender, broker.url(1), tmp_path / "worker.log", name=f"nocompanion-{os.getpid()}@%h").start()
    try:
        with running_collector(sender, sqlite_url, reconcile=False, detect_interval=1.0):
            store = StoreReader(sqlite_url)
            uuid = send(sender, "sleep", 120)
            wait_for(lambda: store.state(uuid) == "STARTED", timeout=20, message="the task never started")
            verdict = {"type": "task-lost", "uuid": uuid, "hostname": worker.hostname, "timestamp": time.time(),
                       "reason": "heartbeats stopped"}
            # Alive: it answers and lists the task as active, so heartbeats that stopped would not make it lost.
            assert lost_confirm.confirm(sender, [verdict], timeout=1.0) == []
            killed_at = kill_worker(worker)
            wait_for(lambda: store.state(uuid) == "LOST", timeout=40, interval=0.2,
                     message="the task was never LOST")
            print(f"LOST {time.time() - killed_at:.1f} s after the SIGKILL (heartbeats, then confirmation)")
            reason = lost_reason(store, uuid)
            assert reason.startswith("heartbeats stopped, no worker-offline"), reason
            assert f"confirmed: {worker.hostname} did not answer" in reason
    finally:
        if worker.process is not None and worker.process.alive:
            kill_worker(worker)
