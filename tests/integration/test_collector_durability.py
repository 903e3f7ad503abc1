"""History survives restarts and SIGKILLs; outages are recorded as gaps, never silently skipped."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for


def collect_args(broker_url: str, database_url: str) -> list[str]:
    return ["--broker", broker_url, "--database", database_url, "--batch-interval", "0.1",
            "--no-enable-events", "--log-level", "info"]


def wait_subscribed(process, timeout: float = 20.0) -> None:
    wait_for(lambda: "subscribed to" in process.log_text() or process.assert_alive("subscribing"),
             timeout=timeout, message="collector never subscribed")


def test_history_survives_a_restart_and_the_downtime_is_a_gap(redis_db, database_url, store, run_webui):
    first = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(first)
    with dispatcher(redis_db) as d:
        before = [send_task_lifecycle(d) for _ in range(50)]
    wait_for(lambda: all(store.state(t) == "SUCCESS" for t in before), message="first batch not stored")
    first.terminate()
    assert first.wait(timeout=15) == 0

    with dispatcher(redis_db) as d:
        send_task_lifecycle(d)  # published while no collector runs: lost on Redis, so a gap must show it
    second = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(second)
    with dispatcher(redis_db) as d:
        after = send_task_lifecycle(d)
    wait_for(lambda: store.state(after) == "SUCCESS", message="task after restart not stored")

    assert all(store.state(t) == "SUCCESS" for t in before)
    gaps = store.gaps()
    assert [g["kind"] for g in gaps] == ["collector-down"]
    assert gaps[0]["ended_at"] is not None and gaps[0]["started_at"] < gaps[0]["ended_at"]
    assert "not running" in gaps[0]["reason"]


def test_a_sigkill_mid_stream_keeps_every_committed_event(redis_db, database_url, store, run_webui):
    collector = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(collector)
    sent = []
    with dispatcher(redis_db) as d:
        for i in range(3000):
            sent.append(send_task_lifecycle(d))
            if i == 1500:
                wait_for(lambda: store.count("task_event") > 0, message="nothing committed before the kill")
                committed_before_kill = store.count("task_event")
                collector.kill(signal.SIGKILL)
    assert collector.wait(timeout=10) == -signal.SIGKILL
    # Everything committed before the kill is still there, and consistent: no half-written batch.
    assert store.count("task_event") >= committed_before_kill
    orphans = store.scalar("SELECT COUNT(*) FROM task_event e LEFT JOIN task t ON t.id = e.task_id "
                           "WHERE t.id IS NULL")
    assert orphans == 0
    mismatched = store.scalar("SELECT COUNT(*) FROM task t WHERE t.event_count <> "
                              "(SELECT COUNT(*) FROM task_event e WHERE e.task_id = t.id)")
    assert mismatched == 0

    restarted = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(restarted)
    wait_for(lambda: any(g["ended_at"] for g in store.gaps()), message="no gap closed after the restart")
    assert store.gaps()[0]["kind"] == "collector-down"


@pytest.mark.parametrize("reader", ["--reader-process", "--no-reader-process"])
def test_a_redis_restart_is_a_gap_and_the_collector_carries_on(private_redis, database_url, store, run_webui,
                                                                reader):
    broker = private_redis.url(0)
    collector = run_webui("collect", *collect_args(broker, database_url), reader)
    wait_subscribed(collector)
    with dispatcher(broker) as d:
        first = send_task_lifecycle(d)
    wait_for(lambda: store.state(first) == "SUCCESS", message="first task not stored")

    private_redis.stop()
    time.sleep(1.0)
    private_redis.start()
    wait_for(lambda: any(g["kind"] == "broker-disconnected" and g["ended_at"] for g in store.gaps()),
             timeout=40, message="no closed broker gap after Redis came back")
    with dispatcher(broker) as d:
        second = send_task_lifecycle(d)
    wait_for(lambda: store.state(second) == "SUCCESS", timeout=15, message="task after the outage not stored")
    gap = next(g for g in store.gaps() if g["kind"] == "broker-disconnected")
    assert "broker connection lost" in gap["reason"]
    assert gap["ended_at"] - gap["started_at"] >= 0.5
    collector.assert_alive("after the Redis restart")


def reader_children(pid: int) -> list[int]:
    """The event reader processes started by any thread of `pid`."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
            found += [int(c) for c in pids if "webui.collector.reader" in Path(f"/proc/{c}/cmdline").read_text()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_reader_process_never_outlives_a_sigkilled_collector(redis_db, database_url, run_webui):
    collector = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(collector)
    [reader] = wait_for(lambda: reader_children(collector.pid), message="no reader process")
    collector.kill(signal.SIGKILL)
    wait_for(lambda: not alive(reader), timeout=5, message="the reader process outlived its collector")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_dead_reader_process_is_a_gap_and_is_replaced(redis_db, database_url, store, run_webui):
    collector = run_webui("collect", *collect_args(redis_db, database_url))
    wait_subscribed(collector)
    [reader] = wait_for(lambda: reader_children(collector.pid), message="no reader process")
    os.kill(reader, signal.SIGKILL)
    gap = wait_for(lambda: [g for g in store.gaps() if g["kind"] == "broker-disconnected" and g["ended_at"]],
                   timeout=20, message="no closed gap after the reader died")[0]
    assert "reader process" in gap["reason"]
    [replacement] = wait_for(lambda: reader_children(collector.pid), message="reader not replaced")
    assert replacement != reader
    with dispatcher(redis_db) as d:
        task_id = send_task_lifecycle(d)
    wait_for(lambda: store.state(task_id) == "SUCCESS", message="events not stored after the replacement")
