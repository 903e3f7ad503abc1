"""The collector's background loops run once per database, however many processes run a collector candidate:
only the leader runs them, and they move with the leadership."""
from __future__ import annotations

import threading
from collections import Counter

from celery import Celery

from tests.support.collector import test_settings as collector_settings
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.collector.service import Collector
from webui.store.database import open_database
from webui.store.schema import upgrade

# Every loop a leading collector runs beside its writer and subscription.
LOOPS = ("webui-inspector", "webui-queue-sampler", "webui-beat-watcher", "webui-lost-marker", "webui-alerts",
         "webui-alert-delivery", "webui-pruner")


def running_loops() -> Counter[str]:
    return Counter(t.name for t in threading.enumerate() if t.name in LOOPS and t.is_alive())


def test_only_the_leading_collector_runs_background_loops_and_they_move_with_it(redis_db, database_url):
    settings = collector_settings(redis_db, database_url, reader_process=False, detect_interval=1.0,
                             prune_interval=1.0)
    app = Celery(broker=redis_db)
    db = open_database(database_url)
    upgrade(db)
    db.close()
    # Two candidates, as two processes would run them: each writer thread has its own connection and leader
    # lock. (They share the database object: the models are bound to one per process.)
    first, second = Collector(settings, app, db), Collector(settings, app, db)
    try:
        first.start()
        wait_for(lambda: first.leading and first.stats.connected, timeout=15, message="the first never led")
        second.start()
        wait_for(lambda: running_loops() == Counter(LOOPS), timeout=10, message="the leader's loops never ran")
        threading.Event().wait(2.5)  # more than two standby polls: the second candidate stays a candidate
        assert not second.leading
        assert running_loops() == Counter(LOOPS)  # once each, not once per candidate

        first.stop()
        wait_for(lambda: second.leading and second.stats.connected, timeout=15, message="the second never led")
        wait_for(lambda: running_loops() == Counter(LOOPS), timeout=10,
                 message="the loops did not move to the new leader, once each")
    finally:
        first.stop()
        second.stop()
        close_database(db)
