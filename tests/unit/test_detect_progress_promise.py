"""A task that promised progress every N s (webui.agent.expect_progress) is stalled exactly when it breaks its own
promise, not by the threshold guessed from its name's runtimes: rows made up and stored through the writer."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.waiting import wait_for
from webui.collector.writer import CollectorStats, Writer
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors
from webui.privacy import Redactor
from webui.store.database import bind_models, open_database
from webui.store.models import Task, Worker
from webui.store.schema import upgrade

T0 = 1_800_000_000.0


@pytest.fixture
def db(tmp_path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path}/d.sqlite3")
    upgrade(database)
    bind_models(database)
    with database.connection_context():
        Worker.create(hostname="w1@h", online=True, first_seen=T0 - 7200, last_seen=T0, status_changed_at=T0,
                      freq=2.0)
        yield database
    database.close()


def write(db: Any, *events: dict[str, Any]) -> None:
    """Store `events` through the collector's writer, as the collector would."""
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.01, clock=lambda: T0)
    for i, event in enumerate(events):
        writer.put_events([event], T0 - 7200 + i)
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0 and not writer._inbox, message="the writer never drained its buffer")
    writer.stop()


def ev(type_: str, ts: float, uuid: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "uuid": uuid, "hostname": "w1@h", "timestamp": ts, "pid": 10, **fields}


def started(uuid: str, at: float, retries: int = 0) -> list[dict[str, Any]]:
    return [ev("task-received", at, uuid, name="app.import", args="()", kwargs="{}", retries=retries),
            ev("task-started", at, uuid)]


def promise(uuid: str, at: float, every: float) -> dict[str, Any]:
    return ev("task-progress", at, uuid, every=every)


def report(uuid: str, at: float, current: float) -> dict[str, Any]:
    return ev("task-progress", at, uuid, current=current, total=100)


def stalled(db: Any, now: float, **params: Any) -> dict[str, Any]:
    detector = all_detectors()["task_stalled"]
    return {f.subject: f for f in detector.run(DetectContext(db, now, settings=None), detector.resolve_params(params))}


def test_a_young_task_that_broke_its_promise_is_stalled_and_the_summary_says_so(db):
    write(db, *started("young", T0 - 130), promise("young", T0 - 130, 30), report("young", T0 - 125, 3))

    found = stalled(db, T0)  # 2 min 5 s into a run far below the 300 s floor

    assert list(found) == ["young"]
    finding = found["young"]
    assert finding.summary == "app.import on w1@h promised progress every 30 s; none for 2 min 5 s"
    assert finding.detail["basis"] == "promise" and finding.detail["promise_seconds"] == 30
    assert finding.detail["last_progress_at"] == T0 - 125 and finding.value == pytest.approx(125)
    assert finding.since == T0 - 125 + 30 + 5  # when the promise broke: the last report, the interval, the grace
    assert finding.link == "/task/young" and finding.scope == "app.import"


def test_a_long_task_keeping_its_promise_is_never_stalled(db):
    write(db, *started("long", T0 - 3 * 3600), promise("long", T0 - 3 * 3600, 30), report("long", T0 - 20, 50),
          *started("guessed", T0 - 3 * 3600))

    found = stalled(db, T0)  # both run for 3 h, ten times the floor: only the one without a promise is stalled

    assert list(found) == ["guessed"]
    assert found["guessed"].detail["basis"] == "floor"


def test_the_promise_is_broken_only_past_its_interval_and_the_grace(db):
    write(db, *started("t", T0 - 100), promise("t", T0 - 100, 10), report("t", T0 - 14.9, 1))

    assert stalled(db, T0) == {}  # 14.9 s silent: within 10 s + 5 s grace
    assert list(stalled(db, T0 + 0.2)) == ["t"]
    assert stalled(db, T0 + 0.2, promise_grace_seconds=30) == {}


def test_a_promise_made_at_the_start_counts_from_the_start_without_any_report(db):
    write(db, *started("silent", T0 - 40), promise("silent", T0 - 40, 20))

    assert stalled(db, T0 - 16) == {}
    assert "none for 40 s" in stalled(db, T0)["silent"].summary


def test_a_promise_made_later_restarts_the_clock(db):
    write(db, *started("late", T0 - 200), promise("late", T0 - 10, 30))
    assert stalled(db, T0) == {}


def test_a_withdrawn_promise_leaves_the_task_to_the_guessed_threshold(db):
    write(db, *started("w", T0 - 400), promise("w", T0 - 400, 5), promise("w", T0 - 390, 0))

    found = stalled(db, T0)

    assert found["w"].detail["basis"] == "floor"  # 400 s past the 300 s floor, not 390 s past a 5 s promise
    assert Task.get(Task.uuid == "w").progress_every is None


def test_a_retry_does_not_inherit_the_promise_of_the_attempt_before(db):
    write(db, *started("r", T0 - 500), promise("r", T0 - 500, 10),
          ev("task-retried", T0 - 60, "r", exception="Boom()"), *started("r", T0 - 50, retries=1))

    assert stalled(db, T0) == {}  # 50 s into attempt 2 with no promise: the floor applies
    assert Task.get(Task.uuid == "r").progress_every is None


def test_a_task_on_an_offline_worker_is_not_stalled_by_its_promise(db):
    write(db, *started("gone", T0 - 100), promise("gone", T0 - 100, 10))
    Worker.update(online=False).where(Worker.hostname == "w1@h").execute()
    assert stalled(db, T0) == {}
