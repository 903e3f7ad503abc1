"""The worker companion (webui.agent) end to end: a real prefork worker with it installed, real Redis, a real
collector reading its stream. Task events are OFF on the main worker: everything the store knows comes from the
companion's records."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis, start_private_redis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

STREAM = "webui:agent"


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateRedis]:
    with start_private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def agent_redis() -> Iterator[PrivateRedis]:
    """The companion's own Redis (not the broker's), so stopping it leaves the worker its broker."""
    with start_private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def sender(broker: PrivateRedis) -> Celery:
    """An app of the test's own to send by name: the session's shared app stays pointed at its broker."""
    return Celery("agent-tests", broker=broker.url(1), backend=broker.url(1),
                  broker_transport_options={"visibility_timeout": 3600})


def start_worker(sender: Celery, broker: PrivateRedis, agent_url: str, log_path: Path, name: str,
                 task_events: bool) -> CeleryWorker:
    worker = CeleryWorker(sender, broker.url(1), log_path, name=f"{name}-{os.getpid()}@%h", task_events=task_events,
                          env={"WEBUI_AGENT_URL": agent_url})
    return worker.start()


@pytest.fixture(scope="module")
def agent_worker(sender: Celery, broker: PrivateRedis, agent_redis: PrivateRedis,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """A prefork worker without task events, with the companion writing to `agent_redis`."""
    worker = start_worker(sender, broker, agent_redis.url(0), tmp_path_factory.mktemp("agent") / "worker.log",
                          "agentworker", task_events=False)
    try:
        yield worker
    finally:
        worker.stop(grace=10)


@pytest.fixture
def fresh_stream(agent_redis: PrivateRedis, agent_worker: CeleryWorker) -> str:
    """The companion's stream emptied of earlier tests' records (and its consumer groups with it)."""
    agent_redis.start()
    client = agent_redis.client()
    client.delete(STREAM)
    client.close()
    return agent_redis.url(0)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'webui.sqlite3'}"


def send(sender: Celery, name: str, *args: object, **options: object) -> str:
    return str(sender.send_task(f"tests.celeryapp.{name}", args, **options).id)


def event_types(store: StoreReader, uuid: str) -> list[str]:
    return [e["type"] for e in store.events(uuid)]


def wait_states(store: StoreReader, expected: dict[str, str], timeout: float = 30.0) -> None:
    def reached() -> bool:
        return all(store.state(uuid) == state for uuid, state in expected.items())
    try:
        wait_for(reached, timeout=timeout, interval=0.2, message="tasks never reached their states")
    except AssertionError:
        print([(store.state(u), event_types(store, u), (store.task(u) or {}).get("detail")) for u in list(expected)[:5]])
        raise


def test_it_sees_every_outcome_with_task_events_off(sender: Celery, agent_worker: CeleryWorker, fresh_stream: str,
                                                    sqlite_url: str) -> None:
    with running_collector(sender, sqlite_url, agent_url=fresh_stream, reconcile=False):
        store = StoreReader(sqlite_url)
        ok, bad, retried = send(sender, "add", 2, 3), send(sender, "fail", "boom"), send(sender, "retry_twice")
        revoked = send(sender, "sleep", 30)
        wait_for(lambda: store.state(revoked) == "STARTED", timeout=20, message="the long task never started")
        sender.control.revoke(revoked, terminate=True)
        wait_states(store, {ok: "SUCCESS", bad: "FAILURE", retried: "SUCCESS", revoked: "REVOKED"})

        assert event_types(store, ok) == ["task-received", "task-started", "task-succeeded"]
        assert store.task(ok)["result"] == "5"
        assert store.task(ok)["runtime"] is not None
        assert store.task(ok)["worker"] == agent_worker.hostname
        assert event_types(store, bad) == ["task-received", "task-started", "task-failed"]
        assert "ValueError('boom')" in store.task(bad)["exception"]
        assert "Traceback" in store.task(bad)["traceback"]
        retry_log = event_types(store, retried)
        assert retry_log.count("task-retried") == 2 and retry_log.count("task-started") == 3
        assert retry_log.count("task-sent") == 2  # the re-publishes, from the pool process
        assert store.task(retried)["retries"] == 2
        assert event_types(store, revoked) == ["task-received", "task-started", "task-revoked"]
        assert store.task(revoked)["detail"].get("terminated") is True
        sources = {e["source"] for uuid in (ok, bad, retried, revoked) for e in store.events(uuid)
                   if e["type"] != "task-sent"}
        assert sources == {"agent"}
        # task_send_sent_event makes the pool process send task-sent even without -E: that event and the
        # companion's record of the same publish are one (above: two task-sent, one per retry, not four).
        assert store.rollup_totals()["succeeded"] == 2
        assert store.rollup_totals()["retried"] == 2
        wait_for(lambda: store.rows("SELECT online FROM worker WHERE hostname = ?", (agent_worker.hostname,)),
                 timeout=10, message="the companion's worker-heartbeat never made the worker known")
        store.close()
