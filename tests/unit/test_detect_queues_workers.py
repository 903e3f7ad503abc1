"""Queue and worker detectors on plain store rows: what a person on call would be told, and when not."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from webui.collector.workers import REASON_OFFLINE_EVENT, REASON_TIMEOUT
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import all_detectors
from webui.settings import default_settings
from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.models import QueueSample, Worker, WorkerInspection

NOW = 1_800_000_000.0
MIN = 60.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path / 'detect.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def detect(db: Any, name: str, now: float = NOW, **params: Any) -> list[Finding]:
    detector = all_detectors()[name]
    return detector.run(DetectContext(db, now, default_settings()), detector.resolve_params(params))


def samples(queue: str, depths: Iterable[int | None], *, every: float = 10.0, end: float = NOW,
            **fields: Any) -> None:
    """Samples of `queue`, one every `every` seconds, the last at `end`."""
    depths = list(depths)
    for i, depth in enumerate(depths):
        QueueSample.create(queue=queue, at=end - (len(depths) - 1 - i) * every, depth=depth,
                           detail=json.dumps({"transport": "redis"}), **fields)


def worker(hostname: str, online: bool = True, **fields: Any) -> None:
    values = {"first_seen": NOW - 86400, "last_seen": NOW - 1, "last_heartbeat": NOW - 1, "freq": 2.0,
              "status_changed_at": NOW - 3600, **fields}
    Worker.create(hostname=hostname, online=online, **values)


def inspection(hostname: str, queues: Iterable[str] = (), active: Iterable[str] = (), at: float = NOW - 5) -> None:
    data = {"active_queues": [{"name": q} for q in queues], "active": [{"id": i} for i in active]}
    WorkerInspection.create(hostname=hostname, at=at, data=json.dumps(data))


# -- queue_unattended ---------------------------------------------------------------------------------------

def test_it_finds_messages_nobody_consumes_and_says_since_when(db) -> None:
    samples("orphan", [0, 0, 3, 5, 8], every=60)

    [finding] = detect(db, "queue_unattended")

    assert (finding.subject, finding.scope, finding.value, finding.link) == ("orphan", "orphan", 8.0, "/queue/orphan")
    assert finding.since == NOW - 120  # the first sample of the stretch with messages
    assert finding.summary.startswith("Queue orphan: 8 messages waiting and no online worker consumes it")
    assert "waiting since" in finding.summary and "(2 min ago)" in finding.summary


def test_a_queue_an_online_worker_consumes_is_attended(db) -> None:
    samples("celery", [5, 5])
    worker("w1@h")
    inspection("w1@h", queues=["celery"])

    assert detect(db, "queue_unattended") == []


def test_a_consumer_that_went_offline_leaves_its_queue_unattended(db) -> None:
    samples("celery", [5, 5])
    worker("w1@h", online=False)
    inspection("w1@h", queues=["celery"])

    assert [f.subject for f in detect(db, "queue_unattended")] == ["celery"]


def test_empty_stale_or_missing_samples_find_nothing(db) -> None:
    assert detect(db, "queue_unattended") == []  # no data at all
    samples("empty", [0, 0])
    samples("old", [9, 9], end=NOW - 10 * MIN)  # the sampler stopped: what it holds now is unknown
    assert detect(db, "queue_unattended") == []


def test_min_depth_raises_the_bar(db) -> None:
    samples("orphan", [2])
    assert detect(db, "queue_unattended", min_depth=3) == []
    assert len(detect(db, "queue_unattended", min_depth=2)) == 1


# -- queue_depth --------------------------------------------------------------------------------------------

def test_depth_above_n_for_the_whole_window_is_found(db) -> None:
    samples("celery", [500] + [1500] * 13, every=MIN)  # above 1000 for the last 13 minutes

    [finding] = detect(db, "queue_depth", depth=1000, minutes=10)

    assert finding.value == 1500.0 and finding.since == NOW - 12 * MIN
    assert finding.summary.startswith("Queue celery: 1500 messages, above 1000 since ")
    assert finding.summary.endswith("(12 min ago)")


def test_one_sample_below_in_the_window_is_enough_to_clear_it(db) -> None:
    samples("celery", [1500] * 8 + [900] + [1500] * 5, every=MIN)

    assert detect(db, "queue_depth", depth=1000, minutes=10) == []


def test_a_history_shorter_than_the_window_proves_nothing(db) -> None:
    samples("celery", [5000] * 6, every=MIN)  # the sampler started 5 minutes ago
    assert detect(db, "queue_depth", depth=1000, minutes=10) == []


def test_too_few_samples_prove_nothing(db) -> None:
    samples("celery", [5000, 5000], every=4 * MIN)  # 4 minutes apart: the window starts before the first
    assert detect(db, "queue_depth", depth=1000, minutes=3) == []


def test_a_hole_in_the_samples_ends_the_stretch(db) -> None:
    samples("celery", [5000] * 3, every=MIN, end=NOW - 15 * MIN)
    samples("celery", [5000] * 9, every=MIN)  # nothing known for 7 minutes in between
    assert detect(db, "queue_depth", depth=1000, minutes=10) == []


def test_unknown_depths_are_skipped_not_counted_as_low(db) -> None:
    samples("celery", [1500] * 6 + [None] + [1500] * 6, every=MIN)
    assert len(detect(db, "queue_depth", depth=1000, minutes=10)) == 1


# -- queue_rising -------------------------------------------------------------------------------------------

def test_a_queue_rising_steadily_is_found_with_its_slope(db) -> None:
    samples("celery", [10 * i for i in range(16)], every=MIN)  # +10 a minute for 15 minutes

    [finding] = detect(db, "queue_rising", minutes=15, min_rise=100)

    assert finding.value == pytest.approx(10.0)
    assert finding.detail["first"] == 0 and finding.detail["last"] == 150
    assert finding.summary == "Queue celery rose from 0 to 150 messages in 15 min (+10/min)"


def test_a_sawtooth_is_not_steady(db) -> None:
    samples("celery", [0, 100, 20, 120, 40, 140, 60, 160, 80, 180, 100, 200, 120, 220, 140, 240], every=MIN)
    assert detect(db, "queue_rising", minutes=15, min_rise=100) == []
    assert len(detect(db, "queue_rising", minutes=15, min_rise=100, steady=0.5)) == 1


def test_a_small_rise_or_a_flat_deep_queue_is_not_rising(db) -> None:
    samples("small", list(range(16)), every=MIN)
    samples("flat", [5000] * 16, every=MIN)
    assert detect(db, "queue_rising", minutes=15, min_rise=100) == []


def test_a_rise_seen_over_part_of_the_window_or_through_few_samples_is_not_enough(db) -> None:
    samples("young", [0, 100, 200, 300, 400, 500], every=MIN)  # 5 minutes of a 15-minute window
    samples("sparse", [0, 500, 1000, 1500], every=5 * MIN)  # 4 samples
    assert detect(db, "queue_rising", minutes=15, min_rise=100) == []


# -- queue_oldest -------------------------------------------------------------------------------------------

def test_the_oldest_message_waiting_too_long_is_found(db) -> None:
    QueueSample.create(queue="slow", at=NOW - 10, depth=3, oldest_age=15 * MIN)
    QueueSample.create(queue="quick", at=NOW - 10, depth=3, oldest_age=2 * MIN)
    QueueSample.create(queue="unknown", at=NOW - 10, depth=3, oldest_age=None)

    [finding] = detect(db, "queue_oldest", minutes=10)

    assert finding.subject == "slow" and finding.value == 15 * MIN and finding.since == NOW - 10 - 15 * MIN
    assert finding.summary.startswith("Queue slow: the oldest message has waited 15 min (sent ")


# -- worker_offline -----------------------------------------------------------------------------------------

def test_a_worker_whose_heartbeats_stopped_is_found_with_since_and_reason(db) -> None:
    worker("w1@h", online=False, status_changed_at=NOW - 5 * MIN, offline_reason=REASON_TIMEOUT, active=2)

    [finding] = detect(db, "worker_offline")

    assert (finding.subject, finding.scope, finding.link) == ("w1@h", "w1@h", "/worker/w1@h")
    assert finding.since == NOW - 5 * MIN and finding.value == 5 * MIN
    assert "offline since" in finding.summary and "(5 min ago): its heartbeats stopped" in finding.summary
    assert finding.summary.endswith("it was running 2 tasks")


def test_a_clean_shutdown_is_reported_only_when_asked(db) -> None:
    worker("w1@h", online=False, status_changed_at=NOW - 5 * MIN, offline_reason=REASON_OFFLINE_EVENT)

    assert detect(db, "worker_offline") == []
    [finding] = detect(db, "worker_offline", shutdowns=True)
    assert "it shut down (worker-offline)" in finding.summary


def test_a_restart_within_the_grace_and_a_worker_back_online_are_not_offline(db) -> None:
    worker("restarting@h", online=False, status_changed_at=NOW - 20, offline_reason=REASON_TIMEOUT)
    worker("back@h", online=True, status_changed_at=NOW - 20)
    assert detect(db, "worker_offline") == []


def test_workers_gone_longer_than_the_window_or_forgotten_are_not_reported(db) -> None:
    worker("retired@h", online=False, status_changed_at=NOW - 2 * 86400, offline_reason=REASON_TIMEOUT)
    worker("forgotten@h", online=False, status_changed_at=NOW - 5 * MIN, offline_reason=REASON_TIMEOUT,
           last_seen=NOW - 5 * MIN, forgotten_at=NOW - 5 * MIN)

    assert detect(db, "worker_offline") == []
    assert [f.subject for f in detect(db, "worker_offline", within_hours=0)] == ["retired@h"]


# -- wedged_worker ------------------------------------------------------------------------------------------

def wedged(**changes: Any) -> None:
    """A worker that heartbeats, holds 2 tasks and sent its last task event 20 minutes ago."""
    worker("w1@h", **{"active": 2, "last_task_event_at": NOW - 20 * MIN, **changes})
    inspection("w1@h", queues=["celery"], active=["t1", "t2"])


def test_a_heartbeating_worker_holding_tasks_while_its_queue_grows_is_wedged(db) -> None:
    wedged()
    samples("celery", [10, 15, 20, 30, 40], every=3 * MIN)

    [finding] = detect(db, "wedged_worker", minutes=15)

    assert finding.subject == "w1@h" and finding.value == 20 * MIN and finding.since == NOW - 20 * MIN
    assert finding.detail["queues"] == {"celery": {"first": 10, "last": 40}}
    assert finding.detail["active_ids"] == ["t1", "t2"]
    assert finding.summary == ("Worker w1@h looks wedged: 2 active tasks, no task event for 20 min, while its "
                               "queue is not draining: celery (10 → 40)")


def test_a_draining_queue_means_it_is_working(db) -> None:
    wedged()
    samples("celery", [40, 30, 20, 10, 5], every=3 * MIN)
    assert detect(db, "wedged_worker", minutes=15) == []


@pytest.mark.parametrize("changes", [
    {"last_task_event_at": NOW - 5 * MIN},  # it sent a task event recently
    {"last_task_event_at": None},  # never sent one: task events are off (the config doctor says so)
    {"last_heartbeat": NOW - 10 * MIN},  # not heartbeating: that is offline, not wedged
    {"active": 0},  # idle
], ids=["recent-event", "no-events", "no-heartbeat", "idle"])
def test_it_is_not_wedged_without_every_sign(db, changes: dict[str, Any]) -> None:
    worker("w1@h", **{"active": 2, "last_task_event_at": NOW - 20 * MIN, **changes})
    inspection("w1@h", queues=["celery"], at=NOW - 30 * MIN)  # old replies: their active list is not used
    samples("celery", [10, 20, 30, 40], every=3 * MIN)
    assert detect(db, "wedged_worker", minutes=15) == []


def test_an_empty_or_unsampled_queue_is_not_waiting_on_it(db) -> None:
    wedged()
    samples("celery", [0, 0, 0], every=3 * MIN)
    assert detect(db, "wedged_worker", minutes=15) == []
    QueueSample.delete().execute()
    assert detect(db, "wedged_worker", minutes=15) == []
