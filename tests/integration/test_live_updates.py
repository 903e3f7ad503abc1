"""`/ws/live` under the real `webui serve` with a real worker: a task run is announced, other sites are refused,
and a process over its socket cap says so."""
from __future__ import annotations

import json
import re
import time

import pytest
import simple_websocket

from tests import celeryapp as tasks
from tests.support.waiting import wait_for
from tests.support.websocket import Client, messages_until

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def connect(server, origin: str | None = None, query: str = "", **headers: str) -> Client:
    if origin is not None:
        headers["Origin"] = origin
    return Client.connect(f"ws://127.0.0.1:{server.port}/ws/live{query}", headers=headers)


def same_site(server, query: str = "") -> Client:
    return connect(server, origin=server.url, query=query)


def page_mark(server, path: str = "/events") -> str:
    match = re.search(r'data-live-mark="([^"]+)"', server.get(path).body)
    assert match, f"{path} carries no live mark"
    return match.group(1)


def drain(ws, seconds: float) -> list[dict]:
    received, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=0.2)
        if raw is not None:
            received.append(json.loads(raw))
    return received


def test_running_a_task_announces_tasks_and_events(server):
    ws = same_site(server, "?since=" + page_mark(server))
    try:
        hello = json.loads(ws.receive(timeout=5))
        assert hello == {"type": "hello", "topics": ["tasks", "events", "workers", "overview", "queues"]}
        # Worker heartbeats may announce `workers` first, and the catch-up since the page a worker coming
        # online (the collector has just started); a task must announce tasks and events.
        drain(ws, 1.5)
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
        # No page mark: first, every topic once. Waited for here, so that its time of arrival is not the
        # time it was read out of the buffer.
        messages_until(ws, lambda m: m["type"] == "changed", timeout=5)
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
def test_a_change_between_a_page_and_its_socket_is_told_first(server):
    # The page is rendered, then a task runs and is stored, and only then does the page's socket connect:
    # the hub's first look already includes the task, so only the page's mark can tell the socket.
    mark = page_mark(server, "/events")
    result = tasks.add.delay(4, 4)
    wait_for(lambda: '"SUCCESS"' in server.get(f"/api/task/info/{result.id}").body, timeout=20,
             message="the task was never stored")
    ws = same_site(server, "?since=" + mark)
    try:
        seen = messages_until(ws, lambda m: m["type"] == "changed" and {"tasks", "events"} <= set(m["topics"]),
                              timeout=5)
        assert [m["type"] for m in seen][:1] == ["hello"]
    finally:
        ws.close()
    ws = same_site(server, "?since=" + "x" * 3000)  # no mark of ours (a reconnect sends none): everything once
    try:
        messages_until(ws, lambda m: m["type"] == "changed" and len(m["topics"]) == 5, timeout=5)
    finally:
        ws.close()


@SQLITE_ONLY
def test_every_page_names_the_socket_and_loads_live_js(server):
    body = server.get("/").body
    assert re.search(r'data-live-url="ws://[^/"]+/ws/live"', body)
    assert '/static/js/live.js' in body and 'id="live-toggle"' in body
