"""PostgreSQL crashes and comes back under a running `webui serve`: events published meanwhile are all stored
afterwards, exactly once; during the outage pages and API say what is wrong (503), and everything recovers
by itself — the pooled connections of the pages as well as the collector's writer and its leader lock."""
from __future__ import annotations

import time

from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.store import StoreReader
from tests.support.waiting import wait_for


def test_a_postgresql_crash_loses_no_event_and_everything_recovers(redis_db, private_postgres, run_webui):
    server = run_webui("serve", "--broker", redis_db, "--database", private_postgres.url, "--batch-interval",
                       "0.1", "--no-enable-events", "--threads", "4", "--beat-interval", "1", "--detect-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    store = StoreReader(private_postgres.url)
    try:
        with dispatcher(redis_db) as d:
            before = [send_task_lifecycle(d) for _ in range(50)]
        wait_for(lambda: store.count("task_event") == 150, timeout=20, message="events before the crash not stored")
        assert server.get("/tasks").status == 200  # the pages' pool now holds connections that will die
        store.close()

        private_postgres.stop("immediate")  # as a crash: no clean shutdown, recovery at the next start
        with dispatcher(redis_db) as d:
            during = [send_task_lifecycle(d) for _ in range(100)]
        time.sleep(1.0)
        health, page, api = server.get("/healthcheck"), server.get("/tasks"), server.get("/api/v1/tasks")
        assert health.status == 503 and "database not writable" in health.body, health.body
        assert page.status == 503 and "Database unavailable" in page.body and "Nothing is lost" in page.body
        assert api.status == 503 and "database did not answer" in api.json()["error"]
        time.sleep(2.0)

        private_postgres.start()
        wait_for(lambda: store.count("task_event") == 450, timeout=60,
                 message="events published while PostgreSQL was down were not all stored")
        assert all(store.state(t) == "SUCCESS" for t in before + during)
        assert store.count("task") == 150  # nothing written twice
        server.wait_http("/healthcheck", 200, timeout=30)
        for _ in range(6):  # every pooled connection of the pages, dead or new, must work again
            assert server.get("/tasks").status == 200
            assert server.get("/api/v1/tasks").status == 200
        assert "database write failed" in server.log_text()
        recovered_at = len(server.log_text())
        time.sleep(4)  # four passes of the beat watcher and the alert rules, each on a fresh connection
        since = server.log_text()[recovered_at:]
        assert "connection is closed" not in since and "failed" not in since, since[-2000:]
        with dispatcher(redis_db) as d:
            after = send_task_lifecycle(d)
        wait_for(lambda: store.state(after) == "SUCCESS", timeout=20, message="the writer stopped after recovery")
    finally:
        store.close()
