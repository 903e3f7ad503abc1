"""A database that refuses writes for a while (locked, restarting) delays events; it never loses them."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_published_while_sqlite_is_locked_are_all_stored_afterwards(redis_db, database_url, store,
                                                                            run_webui):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events")
    server.wait_http("/healthcheck", 200, timeout=30)
    path = database_url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, timeout=1, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # nobody else may write, or even read, until we let go
    released = threading.Event()
    health_while_locked = []

    def probe_health() -> None:
        while not released.is_set():
            health_while_locked.append(server.get("/healthcheck", timeout=20))
            time.sleep(0.5)

    prober = threading.Thread(target=probe_health)
    prober.start()
    try:
        with dispatcher(redis_db) as d:
            task_ids = [send_task_lifecycle(d) for _ in range(200)]
        time.sleep(13)  # longer than the 10 s busy timeout: the writer's commits fail and are retried
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        released.set()
        prober.join()

    wait_for(lambda: all(store.state(t) == "SUCCESS" for t in task_ids), timeout=30,
             message="events published while the database was locked were not all stored")
    assert store.count("task_event") == 600
    assert any(r.status == 503 and "database not writable" in r.body for r in health_while_locked), \
        [r.status for r in health_while_locked]
    assert "database write failed" in server.log_text()
    server.wait_http("/healthcheck", 200, timeout=20)
