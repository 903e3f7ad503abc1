"""Stalled, lost and duplicated tasks, as the detectors and the lost-task marker read them from a real store."""
from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from tests.support.waiting import wait_for
from webui.collector import rollups
from webui.collector.writer import CollectorStats, Writer
from webui.detect import lost_marker, tasks_duplicate, tasks_lost, tasks_stalled
from webui.detect.findings import DetectContext
from webui.detect.registry import all_detectors
from webui.privacy import Redactor
from webui.store.database import bind_models, open_database
from webui.store.models import CollectorGap, Task, TaskMinute, Worker, WorkerEvent
from webui.store.schema import upgrade

T0 = 1_800_000_000.0  # events are received at T0, T0 + 1, …


@pytest.fixture
def db(tmp_path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path}/d.sqlite3")
    upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def write(db: Any, *events: dict[str, Any], repairs: list[dict[str, Any]] | None = None,
          at: float = T0 + 30) -> None:
    """Store `events` (received 1 s apart from T0) and `repairs` (received `at`) through the collector's writer."""
    writer = Writer(db, Redactor(), CollectorStats(leader="test"), batch_interval=0.01, clock=lambda: at)
    for i, event in enumerate(events):
        writer.put_events([event], T0 + i)
    if repairs:
        writer.put_repairs(repairs, "detector")
    writer.start()
    writer.leading.wait(5)
    wait_for(lambda: writer.pending() == 0 and not writer._inbox, message="the writer never drained its buffer")
    writer.stop()


def ev(type_: str, ts: float, uuid: str = "t1", host: str = "w1@h", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "uuid": uuid, "hostname": host, "timestamp": ts, "pid": 10, **fields}


def started(uuid: str, at: float, name: str = "app.sleep", host: str = "w1@h") -> list[dict[str, Any]]:
    return [ev("task-received", at, uuid, host, name=name, args="(30,)", kwargs="{}", retries=0),
            ev("task-started", at, uuid, host)]


def worker(hostname: str, online: bool, at: float, reason: str | None = None, **fields: Any) -> Worker:
    row = Worker.create(hostname=hostname, online=online, first_seen=T0 - 3600, last_seen=fields.pop("last_seen", at),
                        status_changed_at=at, offline_reason=None if online else reason, freq=2.0, **fields)
    WorkerEvent.create(worker_id=row.id, online=online, at=at, reason=reason or "heartbeat")
    return row


def history(name: str, runtimes: list[float], at: float = T0 - 3600) -> None:
    """Successful runtimes in the per-minute histogram, as the writer's rollups count them."""
    buckets = [0] * len(rollups.BUCKET_COLUMNS)
    for runtime in runtimes:
        buckets[bisect.bisect_left(rollups.RUNTIME_BOUNDS, runtime)] += 1
    TaskMinute.insert(minute=int(at // 60) * 60, name=name, succeeded=len(runtimes), runtime_sum=sum(runtimes),
                      runtime_count=len(runtimes), **dict(zip(rollups.BUCKET_COLUMNS, buckets, strict=True))).execute()


def detect(db: Any, name: str, now: float, app: Any = None, **params: Any) -> list:
    detector = all_detectors()[name]
    return detector.run(DetectContext(db, now, settings=None, celery_app=app), detector.resolve_params(params))


def redis_app(visibility_timeout: float = 3.0) -> Celery:
    app = Celery("dup", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.broker_transport_options = {"visibility_timeout": visibility_timeout}

    # Not lazy: registered now, whatever finalizing the app later does with other modules' shared tasks.
    @app.task(name="app.sleep", acks_late=True, lazy=False)
    def sleep() -> None: ...

    @app.task(name="app.quick", lazy=False)
    def quick() -> None: ...

    return app


# -- stalled ----------------------------------------------------------------------------------------------

def test_a_task_running_ten_times_its_p95_is_stalled_and_the_summary_says_why(db):
    history("app.sleep", [45.0] * 100)  # every run in the 30–60 s bucket: p95 ≈ 58.5 s, threshold ≈ 9.75 min
    write(db, *started("long", T0 - 720), *started("recent", T0 - 300))
    worker("w1@h", True, T0)

    found = detect(db, "task_stalled", T0 + 10)

    assert [f.subject for f in found] == ["long"]
    stall = found[0]
    assert stall.scope == "app.sleep" and stall.link == "/task/long" and stall.since == T0 - 720
    assert stall.summary.startswith("app.sleep has been running 12.2 min on w1@h (threshold 9.8 min: 10× its p95 of")
    assert stall.detail["basis"] == "p95" and stall.detail["history_runs"] == 100
    assert stall.value == pytest.approx(730.0)


def test_without_enough_history_the_floor_is_the_threshold(db):
    history("app.sleep", [1.0] * 5)
    write(db, *started("a", T0 - 400), *started("b", T0 - 200))
    worker("w1@h", True, T0)

    found = detect(db, "task_stalled", T0, min_history=20, floor_seconds=300)

    assert [f.subject for f in found] == ["a"]
    assert "the floor; 5 successful runs in 7 days, fewer than the 20 needed" in found[0].summary
    assert detect(db, "task_stalled", T0, threshold_seconds=100)[0].detail["basis"] == "fixed"
    assert len(detect(db, "task_stalled", T0, threshold_seconds=100)) == 2


def test_a_fast_task_is_held_to_the_floor_not_to_ten_times_a_millisecond(db):
    history("app.quick", [0.002] * 100)
    write(db, *started("q", T0 - 301, name="app.quick"))
    worker("w1@h", True, T0)
    found = detect(db, "task_stalled", T0)
    assert len(found) == 1 and "the floor, above 10× its p95 of 2.4 ms" in found[0].summary


def test_a_task_on_an_offline_worker_is_not_stalled_but_lost(db):
    write(db, *started("gone", T0 - 3600))
    worker("w1@h", False, T0 - 3000, "heartbeat timeout")
    assert detect(db, "task_stalled", T0) == []


def test_the_p95_of_tasks_longer_than_the_histogram_is_their_own_mean():
    buckets = [0] * 17
    buckets[-1] = 10  # ten runs over 300 s
    assert tasks_stalled.p95_runtime(buckets, runtime_sum=10 * 3600.0) == 3600.0
    buckets[5] = 90  # and ninety of about 37 ms: the p95 is still in the top bucket
    assert tasks_stalled.p95_runtime(buckets, runtime_sum=10 * 3600.0 + 90 * 0.0375) == pytest.approx(3600.0)


# -- lost -------------------------------------------------------------------------------------------------

def test_a_started_task_of_a_worker_that_stopped_heartbeating_is_lost_after_one_more_window(db):
    write(db, *started("t1", T0), *started("queued", T0, name="app.quick"))
    Task.update(state="RECEIVED").where(Task.uuid == "queued").execute()  # prefetched, never started
    worker("w1@h", False, T0 + 20, "heartbeat timeout", last_seen=T0 + 14)

    assert lost_marker.find_lost(db, T0 + 25) == []  # 2 s × 3 heartbeats of grace after going offline
    events = lost_marker.find_lost(db, T0 + 26.5)

    assert [(e["type"], e["uuid"], e["hostname"], e["timestamp"]) for e in events] == [
        ("task-lost", "t1", "w1@h", T0 + 20)]
    assert "heartbeats stopped, no worker-offline" in events[0]["reason"]
    write(db, repairs=events)
    task = Task.get(Task.uuid == "t1")
    assert task.state == "LOST" and task.worker == "w1@h" and json.loads(task.detail)["lost_at"] == T0 + 20


def test_after_a_clean_shutdown_a_running_task_is_lost_only_once_the_shutdown_grace_has_passed(db):
    write(db, *started("t1", T0))
    worker("w1@h", False, T0 + 5, "worker-offline")

    assert lost_marker.find_lost(db, T0 + 60) == []  # a warm shutdown may still be finishing it
    events = lost_marker.find_lost(db, T0 + 5 + lost_marker.SHUTDOWN_GRACE + 1)
    assert [e["uuid"] for e in events] == ["t1"] and "announced a shutdown" in events[0]["reason"]


def test_a_shutdown_whose_tasks_still_report_is_not_mistaken_for_a_death(db):
    """A warm shutdown's finishing task brings the worker online ("task event"); the sweep then times it out."""
    write(db, *started("t1", T0))
    row = worker("w1@h", False, T0 + 5, "worker-offline")
    WorkerEvent.create(worker_id=row.id, online=True, at=T0 + 30, reason="task event")
    WorkerEvent.create(worker_id=row.id, online=False, at=T0 + 37, reason="heartbeat timeout")
    Worker.update(offline_reason="heartbeat timeout", status_changed_at=T0 + 37, last_seen=T0 + 30).execute()
    assert lost_marker.find_lost(db, T0 + 60) == []
    assert len(lost_marker.find_lost(db, T0 + 30 + lost_marker.SHUTDOWN_GRACE + 1)) == 1


def test_nothing_is_lost_while_the_monitor_is_blind_and_each_worker_gets_a_window_after(db):
    write(db, *started("t1", T0))
    worker("w1@h", False, T0 + 20, "heartbeat timeout", last_seen=T0 + 14)
    gap = CollectorGap.create(started_at=T0 + 10, kind="broker-disconnected", reason="broker down")
    assert lost_marker.find_lost(db, T0 + 100) == []
    CollectorGap.update(ended_at=T0 + 100).where(CollectorGap.id == gap.id).execute()
    assert lost_marker.find_lost(db, T0 + 105) == []  # its heartbeats may be on their way
    assert len(lost_marker.find_lost(db, T0 + 113)) == 1


def test_a_task_started_again_on_a_live_worker_is_not_lost(db):
    write(db, *started("t1", T0), *started("t1", T0 + 5, host="w2@h"))
    worker("w1@h", False, T0 + 20, "heartbeat timeout")
    worker("w2@h", True, T0 + 20)
    assert lost_marker.find_lost(db, T0 + 100) == []


def test_the_lost_detector_says_what_the_app_knows_of_acks_late(db):
    write(db, *started("late", T0), *started("early", T0, name="app.quick"), *started("other", T0, name="x.y"))
    worker("w1@h", False, T0 + 20, "heartbeat timeout", last_seen=T0 + 14)
    write(db, repairs=lost_marker.find_lost(db, T0 + 30))

    found = {f.subject: f for f in detect(db, "task_lost", T0 + 60, app=redis_app(visibility_timeout=120))}

    assert set(found) == {"late", "early", "other"}
    assert found["late"].summary.startswith("app.sleep late was running on w1@h when it went offline at ")
    assert found["late"].summary.endswith("it is acks_late: Redis delivers it again after the visibility timeout "
                                          "(120 s), and it runs a second time.")
    assert "not acks_late" in found["early"].summary and "lost for good" in found["early"].summary
    assert "if it is acks_late" in found["other"].summary
    assert found["late"].link == "/task/late" and found["late"].since == T0 + 20
    assert detect(db, "task_lost", T0 + 20 + 3601, window_minutes=60) == []


def test_the_lost_detector_describes_its_fate_without_an_app():
    assert tasks_lost.fate(None, None, None).startswith("if it is acks_late, the broker delivers it again;")


# -- duplicates -------------------------------------------------------------------------------------------

def test_a_redelivery_while_the_first_run_still_runs_is_blamed_on_the_visibility_timeout(db):
    write(db, *started("t1", T0), *started("t1", T0 + 3.5, host="w2@h"),
          ev("task-succeeded", T0 + 10, "t1", "w1@h", result="1", runtime=10.0))
    worker("w1@h", True, T0)
    worker("w2@h", True, T0)

    found = detect(db, "task_duplicate", T0 + 60, app=redis_app(visibility_timeout=3))

    assert len(found) == 1
    dup = found[0]
    assert dup.subject == "t1" and dup.detail["cause"] == "visibility_timeout" and dup.value == 2
    assert dup.summary.startswith("app.sleep t1 started twice on w1@h, w2@h (first at ")
    assert "likely cause: Redis visibility_timeout (3 s) shorter than the task's runtime" in dup.summary
    assert [s["worker"] for s in dup.detail["starts"]] == ["w1@h", "w2@h"]


def test_a_restart_after_the_first_worker_died_is_blamed_on_worker_loss(db):
    write(db, *started("t1", T0), *started("t1", T0 + 40, host="w2@h"))
    worker("w1@h", False, T0 + 2, "heartbeat timeout")  # received at T0 + 1, offline before the second start
    worker("w2@h", True, T0)
    found = detect(db, "task_duplicate", T0 + 60, app=redis_app())
    assert found[0].detail["cause"] == "worker_loss"
    assert "worker loss (acks_late redelivery): w1@h went offline at" in found[0].summary


def test_a_lost_then_redelivered_task_is_a_duplicate_execution_too(db):
    write(db, *started("t1", T0))
    worker("w1@h", False, T0 + 20, "heartbeat timeout", last_seen=T0 + 14)
    write(db, repairs=lost_marker.find_lost(db, T0 + 30))
    write(db, ev("task-started", T0 + 40, "t1", "w2@h"))  # redelivered after a visibility timeout of 40 s
    found = detect(db, "task_duplicate", T0 + 100)
    assert [f.detail["cause"] for f in found] == ["worker_loss"]
    assert Task.get(Task.uuid == "t1").state == "STARTED"


def test_a_requeue_by_the_worker_is_named_and_retries_are_not_duplicates(db):
    write(db, *started("t1", T0), ev("task-rejected", T0 + 1, "t1", requeue=True),
          *started("t1", T0 + 2, host="w2@h"),
          *started("r", T0, name="app.quick"),
          ev("task-retried", T0 + 1, "r", exception="E()"),
          ev("task-received", T0 + 2, "r", name="app.quick", retries=1), ev("task-started", T0 + 2, "r"))
    found = detect(db, "task_duplicate", T0 + 60)
    assert [(f.subject, f.detail["cause"]) for f in found] == [("t1", "requeued")]


def test_duplicates_older_than_the_window_are_not_reported_and_the_index_is_used(db):
    write(db, *started("t1", T0), *started("t1", T0 + 3, host="w2@h"))
    assert detect(db, "task_duplicate", T0 + 2 * 3600, window_minutes=60) == []
    plan = " ".join(str(r) for r in db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT id, uuid, name, eta FROM task WHERE executions > retries + 1 "
        "AND updated_at >= ? ORDER BY updated_at DESC LIMIT ?", (T0, 200)).fetchall())
    assert "task_repeated" in plan


def test_the_cause_on_rabbitmq_is_its_consumer_timeout_and_unknown_brokers_say_redelivery():
    first = tasks_duplicate.Event("task-started", 0.0, 0.0, "w1@h")
    second = tasks_duplicate.Event("task-started", 1800.0, 1800.0, "w2@h")
    repeat = tasks_duplicate.Repeat(first, second, [])
    assert tasks_duplicate.cause(repeat, None, "rabbitmq", 3600, None).code == "consumer_timeout"
    assert tasks_duplicate.cause(repeat, None, None, 3600, None).code == "redelivery"
    finished = tasks_duplicate.Repeat(first, second, [tasks_duplicate.Event("task-succeeded", 5.0, 5.0, "w1@h")])
    assert tasks_duplicate.cause(finished, None, "redis", 3600, None).code == "other_visibility_timeout"
