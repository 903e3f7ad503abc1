"""The companion on RabbitMQ (an amqp:// agent URL): records through a durable, bounded queue instead of a Redis
Stream. Real RabbitMQ, real prefork workers (task events OFF: what the store knows comes from the records), a
real collector. Each test uses a queue of its own, deleted afterwards. Mirrors test_agent_companion.py."""
# ruff: noqa: F811 - pytest fixtures imported from test_agent_companion are "redefined" as test arguments
from __future__ import annotations

import os
import socket
import threading
import time
import uuid as uuids
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Connection

# The Redis-stream tests' workers' broker (a private Redis), their sender app and SQLite store, shared.
from tests.integration.test_agent_companion import (  # noqa: F401 - fixtures
    broker,
    final_states,
    kill_mid_ingest,
    repeated_reports,
    sender,
    sqlite_url,
)
from tests.support.collector import running_collector
from tests.support.processes import CeleryWorker
from tests.support.services import PrivateRedis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for
from webui.agent.publisher import Publisher
from webui.collector import acks
from webui.collector.agent_queue import AgentQueueMismatch, AgentQueueReader
from webui.collector.agent_stream import AgentStreamOptions


@pytest.fixture
def queue(rabbitmq_url: str) -> Iterator[str]:
    """A queue name of this test's own; the queue is deleted afterwards."""
    name = f"webui-agent-test-{uuids.uuid4().hex[:12]}"
    yield name
    with Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        channel.queue_delete(name)
        channel.close()


def depth(rabbitmq_url: str, name: str) -> tuple[int, int]:
    """(messages ready, consumers) of the queue, as RabbitMQ counts them."""
    with Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        try:
            _name, ready, consumers = channel.queue_declare(queue=name, passive=True)
            return ready, consumers
        finally:
            channel.close()


@pytest.fixture
def start_worker(sender: Celery, broker: PrivateRedis, queue: str,
                 tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Factory: a prefork worker without task events, its companion writing to `agent_url`, the test's `queue`
    (stopped before the queue is deleted: its last records would declare it again)."""
    started: list[CeleryWorker] = []

    def start(agent_url: str, **env: str) -> CeleryWorker:
        worker = CeleryWorker(sender, broker.url(1), tmp_path / f"worker-{len(started)}.log",
                              name=f"amqpagent{len(started)}-{os.getpid()}@%h", task_events=False,
                              env={"WEBUI_AGENT_URL": agent_url, "WEBUI_AGENT_STREAM": queue, **env})
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop(grace=10)


def read_back(rabbitmq_url: str, queue: str, max_length: int, expected: int) -> list[Any]:
    """What the collector's reader hands over, committed at once (its receipts called), until `expected`."""
    got: list[Any] = []
    stop = threading.Event()

    def handoff(records: list[Any], _received: float, redelivered: bool, receipt: Callable[[], None]) -> None:
        got.extend(records)
        receipt()
        if len(got) >= expected:
            stop.set()

    reader = AgentQueueReader(AgentStreamOptions(rabbitmq_url, queue, "unused", max_length), print, lambda: True)
    thread = threading.Thread(target=reader.run, args=(handoff, stop.is_set), daemon=True)
    thread.start()
    stop.wait(30)
    stop.set()
    thread.join(15)
    return got


def test_records_published_are_read_back_in_order_and_acknowledged(rabbitmq_url: str, queue: str) -> None:
    publisher = Publisher(rabbitmq_url, queue, 10_000, 10_000)
    for i in range(1200):  # more than one batch of the publisher (500) and of the reader (1000)
        publisher.put({"type": "task-test", "uuid": f"t{i}", "n": i, "source": "agent"})
    wait_for(lambda: publisher.sent == 1200, timeout=20, message="the publisher never sent every record")
    assert publisher.dropped == 0
    assert depth(rabbitmq_url, queue)[0] == 1200

    got = read_back(rabbitmq_url, queue, 10_000, 1200)
    assert [record["n"] for record in got] == list(range(1200))
    assert got[0] == {"type": "task-test", "uuid": "t0", "n": 0, "source": "agent"}
    wait_for(lambda: depth(rabbitmq_url, queue) == (0, 0), timeout=10,
             message="records read and committed were not acknowledged")


def test_messages_are_persistent_in_a_durable_queue_bounded_by_x_max_length(rabbitmq_url: str, queue: str) -> None:
    publisher = Publisher(rabbitmq_url, queue, 50, 10_000)
    for round_ in range(5):  # 250 records while nothing reads, 50 a batch: the bound after each
        for i in range(50):
            publisher.put({"type": "task-test", "n": round_ * 50 + i})
        wait_for(lambda round_=round_: publisher.sent == (round_ + 1) * 50, timeout=10, message="not sent")
        assert depth(rabbitmq_url, queue)[0] == 50  # never more than the bound
    assert publisher.dropped == 0  # the queue dropped its oldest; the worker's process dropped nothing

    with Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        head = channel.basic_get(queue, no_ack=False)
        assert head is not None
        assert head.properties["delivery_mode"] == 2  # persistent: a broker restart keeps it
        assert '"n": 200' in str(head.body)  # the 200 oldest were dropped (drop-head), the newest kept
        channel.basic_reject(head.delivery_tag, requeue=True)
        channel.close()
    # Declared as durable with x-max-length 50: the same declaration with another bound is refused, and the
    # collector says which setting to change rather than reading a queue it would reshape.
    reader = AgentQueueReader(AgentStreamOptions(rabbitmq_url, queue, "unused", 60), print, lambda: True)
    with pytest.raises(AgentQueueMismatch, match="agent_max_length"):
        reader.run(lambda *a, **k: None, lambda: True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_rabbitmq_unreachable_the_tasks_run_and_drops_are_counted(sender: Celery, start_worker, queue: str) -> None:
    unreachable = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    publisher = Publisher(unreachable, queue, 100, 10_000)
    began = time.perf_counter()
    for i in range(20):
        publisher.put({"type": "task-test", "n": i})
    assert time.perf_counter() - began < 0.5  # put never waits on the broker (the thread's start included)
    wait_for(lambda: publisher.dropped == 20, timeout=10, message="the records were not counted as dropped")
    assert publisher.sent == 0

    worker = start_worker(unreachable)
    long = sender.send_task("tests.celeryapp.sleep", (1.0,))
    results = [sender.send_task("tests.celeryapp.add", (i, 2)) for i in range(20)]
    assert [r.get(timeout=30) for r in results] == [i + 2 for i in range(20)]
    assert long.get(timeout=30) == 1.0
    wait_for(lambda: "records dropped so far" in worker.log_text(), timeout=15,
             message="the worker never said it dropped records")
    log = worker.log_text()
    assert "webui/agent" not in log  # no traceback through the companion
    assert worker.process is not None and worker.process.alive


def test_a_monitor_down_while_tasks_run_then_started_knows_them_all(
        sender: Celery, start_worker, rabbitmq_url: str, queue: str, sqlite_url: str) -> None:
    start_worker(rabbitmq_url)
    with running_collector(sender, sqlite_url, agent_url=rabbitmq_url, agent_stream=queue, reconcile=False):
        wait_for(lambda: depth(rabbitmq_url, queue)[1] == 1, timeout=15, message="the collector never consumed")
    results = [sender.send_task("tests.celeryapp.add", (i, i)) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(200)]
    wait_for(lambda: depth(rabbitmq_url, queue)[0] >= 600, timeout=15, message="the records never reached the queue")

    with running_collector(sender, sqlite_url, agent_url=rabbitmq_url, agent_stream=queue, reconcile=False):
        store = StoreReader(sqlite_url)
        uuids_ = [str(r.id) for r in results]
        try:
            wait_for(lambda: final_states(store, uuids_) == {"SUCCESS": 200}, timeout=30, interval=0.2,
                     message="the 200 tasks run while the monitor was down never all reached SUCCESS")
            # The main process's task-received records may still follow their tasks' success (see below).
            wait_for(lambda: counted(store) == (200, 200, 200), timeout=15, interval=0.2,
                     message="not every record of the 200 tasks was counted once")
            assert {e["source"] for e in store.events(uuids_[0])} == {"agent"}
        finally:
            store.close()


def test_a_collector_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
        sender: Celery, start_worker, rabbitmq_url: str, queue: str, database_url: str, run_webui) -> None:
    """On SQLite and PostgreSQL: the redelivered records' "already stored?" lookup is SQL of each."""
    worker = start_worker(rabbitmq_url)
    collect = ("--broker", worker.broker_url, "--database", database_url, "--agent-url", rabbitmq_url,
               "--agent-stream", queue, "--batch-interval", "0.2", "--batch-size", "60", "--no-enable-events",
               "--no-reconcile")
    first = run_webui("collect", *collect)
    store = StoreReader(database_url)
    try:
        wait_for(lambda: depth(rabbitmq_url, queue)[1] == 1, timeout=30, message="the collector never consumed")
        uuids_ = kill_mid_ingest(first, sender, store, 300)
        with Connection(rabbitmq_url) as conn:  # what it held unacknowledged is back at the queue's head
            channel = conn.channel()
            head = wait_for(lambda: channel.basic_get(queue, no_ack=False), timeout=10, message="queue empty")
            assert head.delivery_info["redelivered"], "the kill came after every record was acknowledged"
            channel.basic_reject(head.delivery_tag, requeue=True)
            channel.close()

        run_webui("collect", *collect)
        wait_for(lambda: final_states(store, uuids_) == {"SUCCESS": 300}, timeout=60, interval=0.2,
                 message="tasks missing after the SIGKILLed collector's successor caught up")
        wait_for(lambda: depth(rabbitmq_url, queue)[0] == 0, timeout=20, message="the queue was not drained")
        # Drained is delivered, not yet committed: wait for the last batch's commit (never more than 300).
        wait_for(lambda: counted(store) == (300, 300, 300), timeout=20, interval=0.2,
                 message="not every record of the 300 tasks was counted once")
        assert repeated_reports(store) == []
        assert store.scalar("SELECT COUNT(*) FROM task WHERE executions != 1") == 0
    finally:
        store.close()


def counted(store: StoreReader) -> tuple[int, int, int]:
    totals = store.rollup_totals()
    return totals["received"], totals["started"], totals["succeeded"]


def test_records_stored_but_never_acknowledged_are_delivered_again_and_stored_once(
        sender: Celery, start_worker, rabbitmq_url: str, queue: str, sqlite_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A collector killed between its commit and its acknowledgement, made certain: it never acknowledges.
    start_worker(rabbitmq_url)
    monkeypatch.setattr(acks.DeliveryAcks, "send", lambda self, channel: None)
    store = StoreReader(sqlite_url)
    try:
        with running_collector(sender, sqlite_url, agent_url=rabbitmq_url, agent_stream=queue, reconcile=False):
            # Ids only: an AsyncResult kept past the test unsubscribes from a private Redis that is gone by then.
            uuids_ = [str(sender.send_task("tests.celeryapp.add", (i, 3)).id) for i in range(40)]
            # Every record stored, not only the final states: a prefork worker's main process sends task-received
            # and its pool processes the rest, so a received record may come after its task's success.
            wait_for(lambda: final_states(store, uuids_) == {"SUCCESS": 40} and counted(store) == (40, 40, 40),
                     timeout=30, message="tasks not stored")
        before = store.rollup_totals()
        waiting = wait_for(lambda: depth(rabbitmq_url, queue)[0] or None, timeout=10, message="nothing returned")
        assert waiting >= 120  # every record of the 40 tasks is back in the queue, marked redelivered

        monkeypatch.undo()
        with running_collector(sender, sqlite_url, agent_url=rabbitmq_url, agent_stream=queue, reconcile=False):
            wait_for(lambda: depth(rabbitmq_url, queue) == (0, 1), timeout=20, message="not read again")
            time.sleep(0.5)  # the commit of the last batch read
        assert store.rollup_totals() == before
        assert (before["received"], before["started"], before["succeeded"]) == (40, 40, 40)
        assert repeated_reports(store) == []
        assert store.scalar("SELECT COUNT(*) FROM task WHERE executions != 1") == 0
    finally:
        store.close()
