"""RabbitMQ without loss: with `event_queue`, events sent while no collector reads are stored afterwards, once.

Real RabbitMQ, real `webui collect` processes (or an in-process collector where a fault is injected), and real
Celery events through Celery's own dispatcher, on an event exchange of each test's own (tests/amqpapp.py).
"""
from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.amqp import EventQueueBroker, event_queue_broker
from tests.support.collector import running_collector
from tests.support.events import send_task_lifecycle
from tests.support.waiting import wait_for
from webui.collector import event_queue


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[EventQueueBroker]:
    yield from event_queue_broker(rabbitmq_url)


def wait_subscribed(process, timeout: float = 20.0) -> None:
    wait_for(lambda: "subscribed to the durable event queue" in process.log_text()
             or process.assert_alive("subscribing"), timeout=timeout, message="collector never subscribed")


def assert_each_stored_once(store, task_ids: list[str]) -> None:
    """Three events per task, one execution, nothing counted twice in the overview's rollups."""
    assert store.count("task") == len(task_ids)
    assert store.count("task_event") == 3 * len(task_ids)
    assert store.scalar("SELECT COUNT(*) FROM task WHERE state <> 'SUCCESS' OR executions <> 1 "
                        "OR event_count <> 3") == 0
    assert store.rollup_totals() == store.stream_event_totals()


@contextmanager
def heartbeating(broker: EventQueueBroker, freq: float) -> Iterator[None]:
    """A worker sending heartbeats every `freq` seconds, as a live worker does, until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        with broker.dispatcher() as d:
            while not stop.is_set():
                d.send("worker-heartbeat", freq=freq, active=0, processed=0, loadavg=[0.1, 0.2, 0.3],
                       sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux")
                stop.wait(freq)

    thread = threading.Thread(target=beat)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_events_sent_while_the_collector_is_stopped_are_stored_after_its_restart(broker, database_url, store,
                                                                                  run_webui):
    # Heartbeats every 0.5 s: a worker is offline after 1.5 s of silence, less than the collector is down.
    with heartbeating(broker, freq=0.5):
        first = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
        wait_subscribed(first)
        with broker.dispatcher() as d:
            before = [send_task_lifecycle(d) for _ in range(20)]
        wait_for(lambda: all(store.state(t) == "SUCCESS" for t in before), message="first tasks not stored")
        first.terminate()
        assert first.wait(timeout=15) == 0
        assert "not committed" not in first.log_text()  # it acknowledged all it had stored before exiting

        with broker.dispatcher() as d:  # the monitor is down: the queue keeps these
            during = [send_task_lifecycle(d) for _ in range(200)]
        time.sleep(2.0)
        assert broker.waiting() > 0
        second = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
        wait_subscribed(second)
        wait_for(lambda: store.count("task_event") == 3 * 220, message="events sent while down not all stored")
        time.sleep(1.0)  # a few sweeps after the backlog

    assert_each_stored_once(store, before + during)
    assert store.gaps() == []  # nothing was missed, so no gap claims anything was
    assert "kept the events sent since" in second.log_text()
    assert "reconciled after gap" not in second.log_text()  # nothing to repair either
    # The worker never stopped beating: the queued heartbeats keep it online across the downtime.
    transitions = store.rows("SELECT online FROM worker_event ORDER BY id")
    assert [bool(t["online"]) for t in transitions] == [True]


def test_a_sigkill_mid_stream_loses_nothing_and_stores_nothing_twice(broker, database_url, store, run_webui):
    collector = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    wait_subscribed(collector)
    sent: list[str] = []
    committed_before_kill = threading.Event()

    def publish() -> None:
        with broker.dispatcher() as d:
            for i in range(3000):
                sent.append(send_task_lifecycle(d))
                if i == 1000:
                    committed_before_kill.wait(20)

    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_for(lambda: store.count("task_event") > 300, message="nothing committed before the kill")
    collector.kill(signal.SIGKILL)
    committed_before_kill.set()
    publisher.join(60)
    assert collector.wait(timeout=10) == -signal.SIGKILL

    restarted = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    wait_subscribed(restarted)
    wait_for(lambda: store.count("task_event") >= 3 * len(sent) and broker.waiting() == 0, timeout=60,
             message="events sent around the kill not all stored")
    restarted.terminate()
    assert restarted.wait(timeout=15) == 0
    assert_each_stored_once(store, sent)
    assert store.gaps() == []


def test_events_stored_but_never_acknowledged_are_delivered_again_and_stored_once(broker, database_url, store,
                                                                                  monkeypatch):
    # A collector killed between its commit and its acknowledgement, made certain: it never acknowledges.
    monkeypatch.setattr(event_queue.DeliveryAcks, "send", lambda self, channel: None)
    with running_collector(broker.app, database_url, event_queue=broker.queue):
        with broker.dispatcher() as d:
            task_ids = [send_task_lifecycle(d) for _ in range(30)]
            d.send("worker-heartbeat", freq=2.0, active=0, processed=30, loadavg=[0.1, 0.2, 0.3],
                   sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux")
        wait_for(lambda: all(store.state(t) == "SUCCESS" for t in task_ids), message="tasks not stored")
    redelivered = broker.waiting()
    assert redelivered > 0, "nothing is waiting to be delivered again"

    monkeypatch.undo()
    with running_collector(broker.app, database_url, event_queue=broker.queue):
        wait_for(lambda: broker.waiting() == 0, message="the messages were not delivered again")
    assert broker.waiting() == 0, "the redelivered messages were not acknowledged"
    assert_each_stored_once(store, task_ids)
    transitions = store.rows("SELECT w.hostname, e.online FROM worker_event e JOIN worker w ON w.id = e.worker_id")
    assert [(t["hostname"], bool(t["online"])) for t in transitions] == [("amqpworker@test", True)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_past_the_queue_bound_are_dropped_counted_and_recorded_as_a_gap(broker, database_url, store,
                                                                              run_webui):
    args = broker.collect_args(database_url, "--event-queue-max-length", "20")
    first = run_webui("collect", *args, env=broker.env)
    wait_subscribed(first)
    first.terminate()
    assert first.wait(timeout=15) == 0

    task_ids = [str(uuid.uuid4()) for _ in range(35)]
    with broker.dispatcher(batched=False) as d:  # one event per message: 35 messages for a bound of 20
        for task_id in task_ids:
            d.send("task-succeeded", uuid=task_id, result="1", runtime=0.01)
    assert broker.waiting() == 20
    second = run_webui("collect", *args, env=broker.env)
    wait_subscribed(second)
    gap = wait_for(lambda: [g for g in store.gaps() if g["ended_at"]], message="no gap for the dropped events")[0]

    wait_for(lambda: store.count("task") == 20, message="the 20 events the queue kept were not stored")
    assert {r["uuid"] for r in store.rows("SELECT uuid FROM task")} == set(task_ids[15:])  # the oldest dropped
    assert (gap["kind"], gap["events_lost"]) == ("event-queue-dropped", 15)
    assert "dropped 15 events in 15 messages" in gap["reason"]
    assert "event_queue_max_length=20" in gap["reason"]
    assert gap["started_at"] <= gap["ended_at"]
    assert len(store.gaps()) == 1  # the downtime itself was no gap: the queue held what it could
    wait_for(lambda: store.status()["events_dropped"] == 15, message="the status does not count the drops")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_queue_that_lost_its_contents_while_the_collector_was_down_is_a_gap(broker, database_url, store,
                                                                             run_webui):
    first = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    wait_subscribed(first)
    first.terminate()
    assert first.wait(timeout=15) == 0
    with broker.dispatcher() as d:
        send_task_lifecycle(d)
    broker.purge()  # what a broker restart does: events (and the marker) are transient messages

    second = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    wait_subscribed(second)
    [gap] = wait_for(lambda: [g for g in store.gaps() if g["ended_at"]], message="no gap recorded")
    assert gap["kind"] == "collector-down"
    assert "lost its contents" in gap["reason"]
    wait_for(lambda: "reconciled after gap" in second.log_text(), message="no reconciliation after the gap")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_the_leader_consumes_and_the_next_leader_reads_the_same_queue(broker, database_url, store,
                                                                          run_webui):
    leader = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    wait_subscribed(leader)
    standby = run_webui("collect", *broker.collect_args(database_url), env=broker.env)
    time.sleep(3)
    standby.assert_alive("standing by")
    assert "collector leading" not in standby.log_text()
    assert broker.consumers() == 1  # the standby took no messages from the queue

    leader.kill(signal.SIGKILL)
    assert leader.wait(timeout=10) == -signal.SIGKILL
    with broker.dispatcher() as d:  # during the handover
        task_ids = [send_task_lifecycle(d) for _ in range(50)]
    wait_subscribed(standby)
    wait_for(lambda: store.count("task_event") == 150, message="events of the handover not stored")
    assert broker.consumers() == 1
    assert_each_stored_once(store, task_ids)
    assert store.gaps() == []
