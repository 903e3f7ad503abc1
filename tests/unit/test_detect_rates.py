"""Rates and regressions per task name from the per-minute rollups, and exception classes never seen before."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peewee import EXCLUDED

from webui.collector.rollups import BUCKET_COLUMNS, RUNTIME_BOUNDS
from webui.detect.findings import DetectContext, Finding
from webui.detect.registry import all_detectors
from webui.settings import default_settings
from webui.store import schema
from webui.store.database import bind_models, open_database
from webui.store.models import Task, TaskMinute

NOW = 1_800_000_030.0  # 30 s into a minute
MIN = 60
THIS_MINUTE = int(NOW // MIN) * MIN
_ids = itertools.count(1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = open_database(f"sqlite:///{tmp_path / 'rates.sqlite3'}")
    schema.upgrade(database)
    bind_models(database)
    with database.connection_context():
        yield database
    database.close()


def detect(db: Any, name: str, **params: Any) -> list[Finding]:
    detector = all_detectors()[name]
    return detector.run(DetectContext(db, NOW, default_settings()), detector.resolve_params(params))


def minutes(ago: range, name: str = "app.sync", **counts: float) -> None:
    """The same counts added to each minute `ago` minutes before this one (one statement, as the writer adds)."""
    rows = [{"minute": THIS_MINUTE - back * MIN, "name": name, **counts} for back in ago]
    added = {getattr(TaskMinute, c): getattr(TaskMinute, c) + getattr(EXCLUDED, c) for c in counts}
    (TaskMinute.insert_many(rows)
     .on_conflict(conflict_target=(TaskMinute.minute, TaskMinute.name), update=added).execute())


def bucket(seconds: float) -> str:
    """The histogram column a runtime of `seconds` is counted in."""
    return BUCKET_COLUMNS[next((i for i, b in enumerate(RUNTIME_BOUNDS) if seconds <= b), len(RUNTIME_BOUNDS))]


def runs(ago: range, seconds: float, count: int, name: str = "app.sync") -> None:
    minutes(ago, name, succeeded=count, runtime_count=count, runtime_sum=seconds * count, **{bucket(seconds): count})


# -- failure_rate -------------------------------------------------------------------------------------------

def test_a_failure_rate_above_the_threshold_is_found(db) -> None:
    minutes(range(15), succeeded=7, failed=3)

    [finding] = detect(db, "failure_rate", minutes=15, percent=10, min_count=20)

    assert (finding.subject, finding.scope, finding.value) == ("app.sync", "app.sync", 30.0)
    assert finding.summary == "app.sync: 30% of 150 finished tasks failed in the last 15 min (above 10%)"
    assert finding.link == "/tasks?name=app.sync&state=FAILURE"
    assert finding.since == THIS_MINUTE - 14 * MIN


def test_one_bad_minute_is_not_enough_over_a_window_of_good_ones(db) -> None:
    minutes(range(1, 15), succeeded=10)
    minutes(range(1), succeeded=0, failed=10)  # 10 of 150: 6.7%

    assert detect(db, "failure_rate", minutes=15, percent=10) == []
    assert len(detect(db, "failure_rate", minutes=1, percent=10, min_count=10)) == 1


def test_too_few_finished_tasks_or_failures_outside_the_window_find_nothing(db) -> None:
    assert detect(db, "failure_rate") == []  # no data
    minutes(range(3), failed=5)  # 15 finished, below min_count 20
    minutes(range(30, 45), name="app.old", failed=10)  # long ago
    minutes(range(15), name="", failed=10)  # tasks whose name is not known
    assert detect(db, "failure_rate", minutes=15, min_count=20) == []


# -- retry_rate ---------------------------------------------------------------------------------------------

def test_retries_far_above_the_tasks_baseline_are_found(db) -> None:
    minutes(range(15, 24 * 60, 10), succeeded=10, retried=1)  # usually 0.1 retries per finished task
    minutes(range(15), succeeded=2, retried=1)  # now 0.5

    [finding] = detect(db, "retry_rate", minutes=15, factor=3, min_retries=10)

    assert finding.subject == "app.sync" and finding.value == 0.5
    assert finding.detail["baseline_rate"] == 0.1 and finding.detail["retried"] == 15
    assert finding.summary == ("app.sync: 0.50 retries per finished task in the last 15 min (15 retries), "
                               "usually 0.10 (the 24 h before)")


def test_retries_within_the_factor_of_the_baseline_are_usual(db) -> None:
    minutes(range(15, 24 * 60, 10), succeeded=10, retried=1)
    minutes(range(15), succeeded=5, retried=1)  # 0.2: twice the usual
    assert detect(db, "retry_rate", minutes=15, factor=3, min_retries=10) == []


def test_without_a_baseline_or_with_few_retries_nothing_is_unusual(db) -> None:
    minutes(range(15), succeeded=1, retried=2)  # a task first seen in the window: 30 retries, no history
    minutes(range(15, 600), name="app.rare", succeeded=10)
    minutes(range(3), name="app.rare", retried=2)  # 6 retries, below min_retries 10
    assert detect(db, "retry_rate", minutes=15, min_retries=10) == []


# -- runtime_regression -------------------------------------------------------------------------------------

def test_a_p95_runtime_well_above_the_baseline_is_found(db) -> None:
    runs(range(15, 24 * 60, 5), seconds=0.8, count=20)
    runs(range(15), seconds=4.0, count=2)

    [finding] = detect(db, "runtime_regression", percentile=95, factor=2, min_count=20)

    assert finding.subject == "app.sync"
    assert 2.5 < finding.value <= 5.0 and 0.5 < finding.detail["baseline_seconds"] <= 1.0
    assert finding.summary.startswith("app.sync: p95 runtime ") and "its usual" in finding.summary
    assert finding.link == "/tasks?name=app.sync&state=SUCCESS"


def test_the_percentile_is_a_parameter(db) -> None:
    runs(range(15, 24 * 60, 5), seconds=0.8, count=20)
    runs(range(15), seconds=0.8, count=20)
    runs(range(1), seconds=20.0, count=6)  # 6 slow runs of 306: in the p99, not in the p95

    assert detect(db, "runtime_regression", percentile=95) == []
    [finding] = detect(db, "runtime_regression", percentile=99)
    assert finding.detail["percentile"] == 99 and finding.summary.startswith("app.sync: p99 runtime ")


def test_fast_tasks_and_thin_histories_are_not_regressions(db) -> None:
    runs(range(15, 24 * 60, 5), seconds=0.004, name="app.fast", count=20)
    runs(range(15), seconds=0.04, name="app.fast", count=20)  # 10x slower, still far below min_seconds
    runs(range(15, 20), seconds=0.5, name="app.new", count=10)  # 50 baseline runs, below min_baseline 100
    runs(range(15), seconds=5.0, name="app.new", count=10)
    runs(range(15, 24 * 60, 5), seconds=0.5, name="app.quiet", count=20)
    runs(range(2), seconds=5.0, name="app.quiet", count=5)  # 10 runs in the window, below min_count 20

    assert detect(db, "runtime_regression") == []


# -- new_exception ------------------------------------------------------------------------------------------

def task(name: str, *, at: float, exception: str | None = None, uuid: str | None = None) -> str:
    task_id = next(_ids)
    uuid = uuid or f"task-{task_id}"
    failed = exception is not None
    Task.create(id=task_id, uuid=uuid, name=name, state="FAILURE" if failed else "SUCCESS", received_at=at,
                failed_at=at + 1 if failed else None, succeeded_at=None if failed else at + 1, exception=exception,
                updated_at=at + 1)
    return uuid


def test_an_exception_class_a_task_never_failed_with_is_new(db) -> None:
    task("app.sync", at=NOW - 86400)
    task("app.sync", at=NOW - 3600, exception="ValueError('bad input')")
    task("app.sync", at=NOW - 300, exception="ValueError('again')")  # known: not new
    task("app.sync", at=NOW - 240, exception="ConnectionResetError(104, 'reset')")
    latest = task("app.sync", at=NOW - 120, exception="ConnectionResetError(104, 'reset')")

    [finding] = detect(db, "new_exception", minutes=15)

    assert (finding.subject, finding.scope) == ("app.sync: ConnectionResetError", "app.sync")
    assert finding.value == 2.0 and finding.since == NOW - 239 and finding.link == f"/task/{latest}"
    assert finding.summary.startswith("app.sync failed with ConnectionResetError, never seen for this task "
                                      "before: 2 failures since ")
    assert finding.detail["example"] == "ConnectionResetError(104, 'reset')"


def test_a_class_seen_for_another_task_is_still_new_for_this_one(db) -> None:
    task("app.sync", at=NOW - 86400)
    task("app.other", at=NOW - 3600, exception="KeyError('x')")
    task("app.sync", at=NOW - 60, exception="KeyError('y')")

    assert [f.subject for f in detect(db, "new_exception")] == ["app.sync: KeyError"]


def test_the_class_is_the_text_before_the_parenthesis(db) -> None:
    task("app.sync", at=NOW - 86400, exception="KeyError('x')")
    task("app.sync", at=NOW - 60, exception="KeyErrorX('y')")  # a different class with the same start

    assert [f.subject for f in detect(db, "new_exception")] == ["app.sync: KeyErrorX"]


def test_a_task_first_seen_in_the_window_has_no_history_to_compare(db) -> None:
    task("app.brand_new", at=NOW - 200)
    task("app.brand_new", at=NOW - 100, exception="RuntimeError('first ever')")
    assert detect(db, "new_exception") == []


def test_the_finding_ends_once_the_first_failure_leaves_the_window(db) -> None:
    task("app.sync", at=NOW - 86400)
    task("app.sync", at=NOW - 20 * MIN, exception="OSError('disk')")
    task("app.sync", at=NOW - 60, exception="OSError('disk')")
    assert detect(db, "new_exception", minutes=15) == []
    assert len(detect(db, "new_exception", minutes=30)) == 1


def test_the_history_looked_through_is_bounded(db) -> None:
    task("app.sync", at=NOW - 86400, exception="OSError('long ago')")
    for i in range(150):
        task("app.sync", at=NOW - 3600 + i)
    task("app.sync", at=NOW - 60, exception="OSError('disk')")

    assert detect(db, "new_exception") == []  # among the newest failures of any task before the window
    assert detect(db, "new_exception", recent=0, scan=1000) == []  # among the task's own newest 1000
    assert [f.subject for f in detect(db, "new_exception", recent=0, scan=100)] == ["app.sync: OSError"]
