"""Two `webui serve` processes on one database: whichever process's collector leads, a live page on either hears
of every task; when the leading process dies the other leads, its pages keep hearing, and nothing is counted
twice (task rows, events, per-minute rollups)."""
from __future__ import annotations

import contextlib
import json
import os
import signal

import psycopg
import pytest
import simple_websocket

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for
from tests.support.websocket import Client, messages_until
from webui.store.change_feed import CHANNEL


def serve(run_webui, broker_url: str, database_url: str):
    process = run_webui("serve", "--broker", broker_url, "--database", database_url, "--batch-interval", "0.1",
                        "--no-enable-events", "--log-level", "info")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process


def leads(process) -> bool:
    return "collector leading" in process.log_text()


def live_socket(process) -> Client:
    ws = Client.connect(f"ws://127.0.0.1:{process.port}/ws/live", headers={"Origin": process.url})
    assert json.loads(ws.receive(timeout=5))["type"] == "hello"
    return ws


def listening_processes(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND query = %s", (f"LISTEN {CHANNEL}",)).fetchone()
    return int(row[0]) if row else 0


def tasks_changed(message: dict) -> bool:
    return message["type"] == "changed" and "tasks" in message["topics"]


def drain(ws: Client, quiet: float = 1.5) -> None:
    """Read until nothing arrives for `quiet` seconds."""
    while ws.receive(timeout=quiet) is not None:
        pass


def publish_tasks(broker_url: str, count: int) -> list[str]:
    with dispatcher(broker_url) as d:
        return [send_task_lifecycle(d) for _ in range(count)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_live_pages_on_every_process_follow_the_leading_collector_through_a_failover(
        redis_db, database_url, store, run_webui):
    first = serve(run_webui, redis_db, database_url)
    wait_for(lambda: leads(first), timeout=20, message="the first process's collector never led")
    second = serve(run_webui, redis_db, database_url)
    sockets = {first: live_socket(first), second: live_socket(second)}
    try:
        # Each process holds its own LISTEN connection; then both hear the leader's commits.
        wait_for(lambda: listening_processes(database_url) == 2, timeout=10,
                 message="not every process LISTENs for changes")
        assert not leads(second), "two collectors lead one database"
        before = publish_tasks(redis_db, 50)
        for ws in sockets.values():
            messages_until(ws, tasks_changed, timeout=10)
        wait_for(lambda: store.count("task_event") == 150, message="the first leader did not store every event")

        os.killpg(first.pid, signal.SIGKILL)  # gunicorn's arbiter, its worker and the collector's reader
        wait_for(lambda: leads(second), timeout=15, message="the surviving process's collector never led")
        wait_for(lambda: "subscribed to" in second.log_text().split("collector leading", 1)[-1], timeout=10,
                 message="the new leader never subscribed")
        drain(sockets[second])  # what it heard about the first tasks and the takeover
        after = publish_tasks(redis_db, 50)
        messages_until(sockets[second], tasks_changed, timeout=10)
        wait_for(lambda: store.count("task_event") == 300, message="the new leader did not store every event")
    finally:
        for ws in sockets.values():
            with contextlib.suppress(simple_websocket.ConnectionClosed):  # the killed process's is gone
                ws.close()

    assert store.count("task") == 100 and store.count("task_event") == 300  # nothing written twice
    assert all(store.state(t) == "SUCCESS" for t in before + after)
    assert store.rollup_totals() == store.stream_event_totals()  # nor counted twice
    assert store.rollup_totals()["succeeded"] == 100
    leader_pid = int(store.status()["leader"].rsplit(":", 1)[1])
    assert leader_pid in children(second), "the leader is not the second server's collector process"


def children(process) -> list[int]:
    """The arbiter's children: its gunicorn worker and the collector's own process (webui.collector_process)."""
    found = []
    for listing in os.scandir(f"/proc/{process.pid}/task"):
        with open(f"{listing.path}/children") as f:
            found += [int(pid) for pid in f.read().split()]
    assert len(found) == 2, f"expected a gunicorn worker and the collector, found {found}"
    return found
