"""`/ws/live` under the real `webui serve` with a real worker: a task run is announced, other sites are refused,
and a process over its socket cap says so."""
from __future__ import annotations

import json
import re
import time

import pytest
import simple_websocket

from tests import celeryapp as tasks
from tests.support.websocket import Client, messages_until

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def connect(server, origin: str | None = None, **headers: str) -> Client:
    if origin is not None:
        headers["Origin"] = origin
    return Client.connect(f"ws://127.0.0.1:{server.port}/ws/live", headers=headers)


def same_site(server) -> Client:
    return connect(server, origin=server.url)


def test_running_a_task_announces_tasks_and_events(server):
    ws = same_site(server)
    try:
        hello = json.loads(ws.receive(timeout=5))
        assert hello == {"type": "hello", "topics": ["tasks", "events", "workers", "overview", "queues"]}
        # Worker heartbeats may announce `workers` first; a task must announce tasks and events.
        time.sleep(1.5)  # let the hub take its first snapshot
        tasks.add.delay(2, 3)
        seen = messages_until(ws, lambda m: m["type"] == "changed" and {"tasks", "events"} <= set(m["topics"]))
        changed = [m for m in seen if m["type"] == "changed"]
        assert all(set(m["topics"]) <= {"tasks", "events", "workers", "overview", "queues"} for m in changed)
    finally:
        ws.close()


@SQLITE_ONLY
def test_messages_come_at_most_once_per_live_interval(worker, database_url, run_webui):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url, "--batch-interval",
                       "0.1", "--no-enable-events", "--live-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    ws = same_site(server)
    try:
        ws.receive(timeout=5)  # hello
        for i in range(20):
            tasks.add.delay(i, i)
        arrivals = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            if ws.receive(timeout=0.2) is not None:
                arrivals.append(time.monotonic())
        assert arrivals, "nothing was announced"
        assert all(later - earlier >= 0.9 for earlier, later in zip(arrivals, arrivals[1:], strict=False))
    finally:
        ws.close()


@SQLITE_ONLY
@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null"])
def test_a_page_of_another_site_is_refused(server, origin):
    with pytest.raises(simple_websocket.ConnectionError) as refused:
        connect(server, origin=origin)
    assert refused.value.status_code == 403


@SQLITE_ONLY
def test_a_client_without_origin_is_no_browser_and_is_let_in(server):
    ws = connect(server)
    try:
        assert json.loads(ws.receive(timeout=5))["type"] == "hello"
    finally:
        ws.close()


@SQLITE_ONLY
def test_a_socket_over_the_cap_is_closed_with_a_reason(worker, database_url, run_webui):
    server = run_webui("serve", "--broker", worker.broker_url, "--database", database_url,
                       "--no-enable-events", "--live-max-sockets", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    first = same_site(server)
    try:
        assert json.loads(first.receive(timeout=5))["type"] == "hello"
        second = same_site(server)
        with pytest.raises(simple_websocket.ConnectionClosed) as closed:
            second.receive(timeout=5)
        assert closed.value.reason == 1013
        assert "live updates are full" in closed.value.message
    finally:
        first.close()


@SQLITE_ONLY
def test_every_page_names_the_socket_and_loads_live_js(server):
    body = server.get("/").body
    assert re.search(r'data-live-url="ws://[^/"]+/ws/live"', body)
    assert '/static/js/live.js' in body and 'id="live-toggle"' in body
