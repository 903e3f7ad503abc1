"""`webui serve` runs its embedded collector in a process of its own beside the gunicorn worker
(webui.collector_process): it leads, it is started again when it dies, it stops with the server after flushing,
and it never outlives a killed server."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def serve(run_webui, broker_url: str, database_url: str):
    process = run_webui("serve", "--broker", broker_url, "--database", database_url, "--batch-interval", "0.1",
                        "--no-enable-events", "--log-level", "info")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process


def children(pid: int) -> list[int]:
    found: list[int] = []
    for listing in os.scandir(f"/proc/{pid}/task"):
        with open(f"{listing.path}/children") as f:
            found += [int(child) for child in f.read().split()]
    return found


def name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def collector_of(process) -> int | None:
    found = [pid for pid in children(process.pid) if name(pid) == "webui-collector"]
    return found[0] if len(found) == 1 else None


def leader_pid(store) -> int | None:
    status = store.status()
    return int(status["leader"].rsplit(":", 1)[1]) if status and status.get("leader") else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def publish_tasks(broker_url: str, count: int) -> list[str]:
    with dispatcher(broker_url) as d:
        return [send_task_lifecycle(d) for _ in range(count)]


def test_the_collector_leads_from_its_own_process_and_is_started_again_when_killed(
        redis_db, database_url, store, run_webui):
    server = serve(run_webui, redis_db, database_url)
    first = wait_for(lambda: collector_of(server), timeout=10, message="no webui-collector child of the arbiter")
    assert len(children(server.pid)) == 2  # one gunicorn worker, one collector
    wait_for(lambda: leader_pid(store) == first, timeout=10, message="the collector process never led")
    publish_tasks(redis_db, 20)
    wait_for(lambda: store.count("task") == 20, timeout=15, message="the collector did not store the tasks")

    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (pid := collector_of(server)) and pid != first and pid, timeout=15,
                      message="the arbiter did not start the collector again")
    wait_for(lambda: leader_pid(store) == second, timeout=15, message="the new collector process never led")
    wait_for(lambda: "subscribed to" in server.log_text().split("collector leading for", 2)[-1], timeout=10,
             message="the new collector never subscribed")
    publish_tasks(redis_db, 20)

    wait_for(lambda: store.count("task") == 40, timeout=15, message="the new collector did not store the tasks")
    assert "exited (killed by SIGKILL)" in server.log_text()
    assert server.get("/healthcheck").status == 200


def test_sigterm_flushes_and_stops_the_collector_with_the_server(redis_db, database_url, store, run_webui):
    server = serve(run_webui, redis_db, database_url)
    collector = wait_for(lambda: collector_of(server), timeout=10, message="no collector process")
    wait_for(lambda: leader_pid(store) == collector, timeout=10, message="the collector process never led")

    server.terminate()
    assert server.wait(15) == 0
    assert not alive(collector)
    assert "received SIGTERM: flushing and stopping" in server.log_text()


def test_a_killed_server_takes_its_collector_with_it(redis_db, database_url, store, run_webui):
    server = serve(run_webui, redis_db, database_url)
    collector = wait_for(lambda: collector_of(server), timeout=10, message="no collector process")
    wait_for(lambda: leader_pid(store) == collector, timeout=10, message="the collector process never led")
    publish_tasks(redis_db, 10)
    wait_for(lambda: store.count("task") == 10, timeout=15, message="the collector did not store the tasks")

    os.kill(server.pid, signal.SIGKILL)  # the arbiter alone: the kernel tells the collector (PR_SET_PDEATHSIG)
    deadline = time.monotonic() + 15
    while alive(collector) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert not alive(collector), "the collector outlived its killed server"
