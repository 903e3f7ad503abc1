"""Totals for /metrics are sums over stored rows: the same in every process, and never falling as time moves."""
from __future__ import annotations

from pathlib import Path

import pytest

from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.metrics_queries import DAY, TaskTotalsReader, workers
from webui.store.models import Task, TaskMinute, Worker

NOW = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    yield database
    database.close()


def task(uuid: str, at: float, **fields) -> None:
    values = {"name": "app.add", "state": "SUCCESS", "sent_at": at, "received_at": at + 1, "started_at": at + 3,
              "updated_at": at, **fields}
    Task.create(uuid=uuid, **values)


def rollup(minute: float, **counts) -> None:
    TaskMinute.insert(minute=int(minute // 60) * 60, name="app.add", **counts).execute()


def test_a_process_that_kept_old_sums_agrees_with_a_fresh_one(db) -> None:
    old = TaskTotalsReader((1.0, 10.0))
    rollup(NOW - 5 * DAY, received=4, succeeded=3)
    task("t1", NOW - 3 * DAY)
    task("t2", NOW - 2 * DAY, state="FAILURE", exception="KeyError('x')", failed_at=NOW - 2 * DAY)
    first = old.read(NOW)

    rollup(NOW - 60, received=2, succeeded=2)  # rows arrive above every boundary
    task("t3", NOW - 30, state="FAILURE", exception="ValueError()", failed_at=NOW - 20)
    later = old.read(NOW + 3 * DAY)  # the boundaries move past everything read before
    fresh = TaskTotalsReader((1.0, 10.0)).read(NOW + 3 * DAY)

    assert first.counts["app.add"]["received"] == 4 and first.counts["app.add"]["sent"] == 2
    assert later == fresh
    assert later.counts["app.add"]["received"] == 6 and later.counts["app.add"]["succeeded"] == 5
    assert later.counts["app.add"]["sent"] == 3
    assert later.failures == {("app.add", "KeyError"): 1, ("app.add", "ValueError"): 1}
    assert later.wait["app.add"] == ([0, 3, 0], 9.0)  # each waited 3 s from sent to started


def test_a_task_that_arrives_already_settled_leaves_the_unsettled_ones_before_it_open(db) -> None:
    old = TaskTotalsReader((1.0, 10.0))
    task("t1", NOW - DAY)
    task("queued", NOW - 10, started_at=None)  # received 9 s ago, not started yet
    task("late", NOW - 3600)  # its events came late (a worker's clock behind): settled on arrival, newest id
    first = old.read(NOW)

    Task.update(started_at=NOW + 20).where(Task.uuid == "queued").execute()  # it starts: 30 s of wait
    later = old.read(NOW + 30)

    assert first.wait["app.add"] == ([0, 2, 0], 6.0)
    assert later == TaskTotalsReader((1.0, 10.0)).read(NOW + 30)
    assert later.wait["app.add"] == ([0, 2, 1], 36.0)


def test_offline_workers_leave_after_the_expiry_and_forgotten_ones_at_once(db) -> None:
    Worker.create(hostname="up", online=True, active=2, first_seen=NOW, last_seen=NOW)
    Worker.create(hostname="recent", online=False, active=5, first_seen=NOW, last_seen=NOW - 60,
                  status_changed_at=NOW - 60)
    Worker.create(hostname="gone", online=False, first_seen=NOW, last_seen=NOW - 700, status_changed_at=NOW - 700)
    Worker.create(hostname="forgotten", online=False, first_seen=NOW, last_seen=NOW - 5, status_changed_at=NOW - 5,
                  forgotten_at=NOW - 5)

    series = {w.hostname: (w.online, w.active) for w in workers(600, NOW)}

    assert series == {"up": (True, 2), "recent": (False, 0)}
