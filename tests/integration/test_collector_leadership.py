"""One collector leads per database; when it dies another takes over within seconds; none double-writes."""
from __future__ import annotations

import signal
import time

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for


def start_collector(run_webui, broker_url: str, database_url: str):
    return run_webui("collect", "--broker", broker_url, "--database", database_url, "--batch-interval", "0.1",
                     "--no-enable-events", "--log-level", "info")


def leading(process) -> bool:
    return "collector leading" in process.log_text()


def test_two_collectors_on_one_database_elect_one_and_fail_over(redis_db, database_url, store, run_webui):
    first = start_collector(run_webui, redis_db, database_url)
    wait_for(lambda: leading(first), timeout=20, message="first collector never led")
    second = start_collector(run_webui, redis_db, database_url)
    time.sleep(3)
    assert not leading(second), "two collectors lead the same database"

    with dispatcher(redis_db) as d:
        before = [send_task_lifecycle(d) for _ in range(100)]
    wait_for(lambda: store.count("task_event") == 300, message="events of the first leader not all stored")

    first.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: leading(second), timeout=10, message="the standby did not take over")
    takeover = time.monotonic() - killed_at
    wait_for(lambda: "subscribed to" in second.log_text(), timeout=10, message="new leader never subscribed")
    with dispatcher(redis_db) as d:
        after = [send_task_lifecycle(d) for _ in range(100)]
    wait_for(lambda: store.count("task_event") == 600, message="events of the new leader not all stored")
    time.sleep(0.5)

    assert store.count("task_event") == 600 and store.count("task") == 200  # nothing written twice
    # …nor counted twice: the per-minute rollups add up to the stored events, whichever leader wrote them.
    assert store.rollup_totals() == store.stream_event_totals()
    assert store.rollup_totals()["received"] == 200 and store.rollup_totals()["succeeded"] == 200
    assert all(store.state(t) == "SUCCESS" for t in before + after)
    assert takeover < 5, f"takeover took {takeover:.1f}s"
    assert [g["kind"] for g in store.gaps()] == ["collector-down"]
    assert store.status()["leader"].endswith(f":{second.pid}")
