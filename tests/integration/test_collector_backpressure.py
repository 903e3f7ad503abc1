"""The writer falls behind (here: SQLite held locked): the reader keeps draining Redis, so Redis never
disconnects the collector as a slow subscriber; what exceeds the collector's bound is dropped, counted, kept
as a gap with the number lost, and exported in /metrics; everything else is written once the lock goes."""
from __future__ import annotations

import sqlite3

import pytest
import redis
from celery import Celery

from tests.support.collector import running_collector
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.app import create_app
from webui.settings import default_settings

BOUND = 600  # events the collector may hold while it cannot write


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stuck_writer_drops_counted_events_and_keeps_its_subscription(private_redis, database_url, store):
    redis_db = private_redis.url(3)
    app = Celery(broker=redis_db)
    client = redis.Redis.from_url(redis_db)
    # A pub/sub output buffer far below the events published: Redis would cut a subscriber that stopped reading.
    client.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 2")
    with running_collector(app, database_url, reader_process=True) as collector:
        collector.writer.max_buffered_events = BOUND
        subscribers_before = client.execute_command("PUBSUB", "NUMPAT")
        locker = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=1, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with dispatcher(redis_db) as d:
                for _ in range(1000):  # 3,000 events: five times the bound
                    send_task_lifecycle(d)
            wait_for(lambda: collector.stats.events_dropped > 0, timeout=20, message="nothing dropped past the bound")
            assert collector.stats.connected
            assert client.execute_command("PUBSUB", "NUMPAT") == subscribers_before  # still subscribed
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        wait_for(lambda: collector.writer.pending() == 0, timeout=60, message="the writer never caught up")
        with dispatcher(redis_db) as d:
            after = send_task_lifecycle(d)
        wait_for(lambda: store.state(after) == "SUCCESS", timeout=20, message="no event stored after the overflow")
        dropped = collector.stats.events_dropped
    client.close()

    assert 0 < dropped <= 3000 - BOUND + 100
    stored = store.count("task_event")
    assert stored + dropped >= 3000 + 3  # every event either written or counted as dropped
    gaps = [g for g in store.gaps() if g["kind"] == "buffer-overflow"]
    assert len(gaps) == 1 and gaps[0]["events_lost"] == dropped and gaps[0]["ended_at"] is not None
    assert not [g for g in store.gaps() if g["kind"] == "broker-disconnected"]

    application = create_app(default_settings(broker="memory://", database=database_url, insecure_no_auth=True,
                                              alert_default_rules=False, metrics_public=True),
                             start_collector=False)
    try:
        metrics = application.test_client().get("/metrics").get_data(as_text=True)
    finally:
        close_database(application.config["WEBUI_DATABASE"])
    lost = [line for line in metrics.splitlines() if "gap_events_lost_total" in line and not line.startswith("#")]
    assert len(lost) == 1 and float(lost[0].split()[-1]) == dropped, lost
