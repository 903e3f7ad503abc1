"""PostgreSQL's change feed: the writer NOTIFYs on commit, every process's live hub LISTENs and looks at once.

The hubs here poll only once a minute, so whatever reaches a socket within seconds came through the feed.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.live import LiveHub, read_snapshot
from webui.privacy import Redactor
from webui.store.change_feed import CHANNEL
from webui.store.database import open_database
from webui.store.schema import upgrade

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SLOW_POLL = 60.0
TASK_TOPICS = {"events", "overview", "tasks"}  # `queues` may come too: every 10 s of collector heartbeat


@pytest.fixture
def writer(database_url: str) -> Iterator[Writer]:
    db = open_database(database_url)
    upgrade(db)
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.05)
    writer.start()
    assert writer.leading.wait(10), "the writer never started"
    yield writer
    writer.stop()
    close_database(db)


class CountingHub(LiveHub):
    """A web process's hub that counts its looks at the store."""

    def __init__(self, database_url: str) -> None:
        self.looks = 0

        def read(db):
            self.looks += 1
            return read_snapshot(db)

        super().__init__(open_database(database_url), 4, interval=SLOW_POLL, listening_interval=SLOW_POLL,
                         read=read)

    def close(self) -> None:
        self.stop()
        close_database(self.db)


@pytest.fixture
def hubs(database_url: str) -> Iterator[list[CountingHub]]:
    made = [CountingHub(database_url), CountingHub(database_url)]
    yield made
    for hub in made:
        hub.close()


def task_event(task_id: str) -> dict:
    return {"type": "task-received", "uuid": task_id, "name": "feed.task", "hostname": "w@feed",
            "timestamp": time.time(), "args": "()", "kwargs": "{}", "retries": 0}


def listening_backends(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND query = %s", (f"LISTEN {CHANNEL}",)).fetchone()
    return int(row[0]) if row else 0


def ready(hub: CountingHub):
    subscription = hub.subscribe()
    assert subscription is not None
    wait_for(lambda: hub.listening and hub.looks >= 1, timeout=10, message="the hub never listened")
    time.sleep(0.2)  # the look that follows LISTEN (a change may have been missed before it)
    return subscription


def test_a_committed_batch_reaches_the_hub_of_every_process_at_once(writer, hubs, database_url):
    subscriptions = [ready(hub) for hub in hubs]
    assert listening_backends(database_url) == 2  # one dedicated connection per process, not a pooled one

    writer.put_events([task_event(str(uuid.uuid4()))], time.time())
    for subscription in subscriptions:
        assert TASK_TOPICS <= set(subscription.wait(timeout=5))


def test_only_batches_that_change_something_notify(writer, database_url):
    # Its first status row is news (a collector now leads); after that, heartbeats alone are not.
    wait_for(lambda: writer.stats.last_commit_at is not None, message="the writer never committed")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        time.sleep(1.5)  # the writer's heartbeat commits once a second: none of them may notify
        quiet = [n.payload for n in conn.notifies(timeout=1.0)]
        writer.put_events([task_event(str(uuid.uuid4()))], time.time())
        news = [n.payload for n in conn.notifies(timeout=5.0, stop_after=1)]
    assert quiet == []
    assert news == ["events,overview,tasks"]


def test_a_hub_whose_listen_connection_is_killed_listens_again(writer, hubs, database_url, caplog):
    hub = hubs[0]
    subscription = ready(hub)
    caplog.set_level(logging.INFO, logger="webui.store.change_feed")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND query = %s", (f"LISTEN {CHANNEL}",))
    wait_for(lambda: not hub.listening, timeout=5, message="the hub never noticed its connection was gone")
    wait_for(lambda: hub.listening, timeout=10, message="the hub never listened again")
    time.sleep(0.2)

    writer.put_events([task_event(str(uuid.uuid4()))], time.time())
    assert TASK_TOPICS <= set(subscription.wait(timeout=5))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot LISTEN" in warnings[0].getMessage()
    assert any("listen on PostgreSQL again" in r.getMessage() for r in caplog.records)


def test_a_hub_without_sockets_holds_no_listen_connection(hubs, database_url):
    hub = hubs[0]
    subscription = ready(hub)
    assert listening_backends(database_url) == 1
    hub.unsubscribe(subscription)
    wait_for(lambda: listening_backends(database_url) == 0, timeout=5,
             message="the LISTEN connection outlived the last socket")
    assert ready(hub) is not None  # and a new socket brings it back
