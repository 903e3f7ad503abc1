"""The presence watch (webui.detect.presence) against real Redis marks written by the companion's own class."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from webui.agent.presence import Presence, key
from webui.detect.presence import PresenceWatch
from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.models import Task, Worker


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path / 'presence.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def running(hostname: str, uuid: str, last_seen: float) -> None:
    Worker.create(hostname=hostname, online=True, first_seen=last_seen - 60, last_seen=last_seen)
    Task.create(uuid=uuid, name="app.job", state="STARTED", worker=hostname, started_at=last_seen - 10,
                updated_at=last_seen)


def mark(url: str, hostname: str, stopped: bool = False) -> None:
    """What the companion's heartbeat (or its clean shutdown) writes, through its own class."""
    presence = Presence(url, hostname, 2.0)
    presence.stopped() if stopped else presence.refresh()
    presence.client.close()


def unmark(url: str, *hostnames: str) -> None:
    """What the TTL does to a SIGKILLed worker's mark."""
    client = redis.Redis.from_url(url)
    client.delete(*(key(h) for h in hostnames))
    client.close()


@pytest.fixture
def watch(redis_db: str) -> Iterator[PresenceWatch]:
    watcher = PresenceWatch(redis_db)
    yield watcher
    watcher.close()


def test_a_mark_seen_then_gone_makes_the_workers_tasks_lost(db, redis_db: str, watch: PresenceWatch) -> None:
    now = time.time()
    running("w1@h", "t1", now - 30)
    mark(redis_db, "w1@h")
    assert watch.check(db, now) == [] and watch.alive == {"w1@h"}  # present: it vouches for its tasks

    unmark(redis_db, "w1@h")
    [verdict] = watch.check(db, now)
    assert (verdict["type"], verdict["uuid"], verdict["hostname"]) == ("task-lost", "t1", "w1@h")
    assert verdict["reason"].startswith("the companion's liveness mark stopped at ")
    assert "it started after that refresh" in verdict["reason"] and watch.alive == set()


def test_no_verdict_for_a_worker_still_heard_from_stopped_cleanly_or_never_marked(
        db, redis_db: str, watch: PresenceWatch) -> None:
    now = time.time()
    running("heard@h", "t1", now - 1)  # its events still arrive: the mark, not the worker, failed
    running("stopped@h", "t2", now - 30)
    running("unmarked@h", "t3", now - 30)  # no companion there: the heartbeat rules decide
    mark(redis_db, "heard@h")
    mark(redis_db, "stopped@h", stopped=True)
    assert watch.check(db, now) == [] and watch.alive == {"heard@h"}  # a clean stop vouches for nothing

    unmark(redis_db, "heard@h", "stopped@h")
    assert watch.check(db, now) == []


def test_a_redis_restart_that_lost_every_mark_is_no_death(db, private_redis) -> None:
    now = time.time()
    running("w1@h", "t1", now - 30)
    mark(private_redis.url(0), "w1@h")
    watch = PresenceWatch(private_redis.url(0))
    assert watch.check(db, now) == [] and watch.alive == {"w1@h"}

    private_redis.stop()  # --save "": the restarted server holds no mark at all
    private_redis.start()
    assert watch.check(db, now) == [] and watch.seen == {}
    mark(private_redis.url(0), "w1@h")  # the worker's next heartbeat: judged again from here
    assert watch.check(db, now) == [] and watch.alive == {"w1@h"}
    unmark(private_redis.url(0), "w1@h")
    assert [v["uuid"] for v in watch.check(db, now)] == ["t1"]
    watch.close()
