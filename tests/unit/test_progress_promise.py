"""The "expect progress every N s" promise: what a task sends (webui.agent), how the collector keeps it
(webui.collector.merge), and how it is judged (webui.progress_promise)."""
from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

import webui.agent
from webui.collector.merge import AGENT_SOURCE, TaskState, apply_task_event
from webui.progress_promise import Promise, clock_duration, of_task


def record(etype: str, ts: float, retries: int = 0, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "uuid": "t1", "hostname": "w1@h", "timestamp": ts, "local_received": ts,
            "retries": retries, **fields}


# -- merge -------------------------------------------------------------------------------------------------

def test_the_promise_is_kept_with_the_time_it_was_made_and_a_report_can_change_it() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, record("task-started", 1.0), AGENT_SOURCE)
    apply_task_event(task, record("task-progress", 1.1, every=30), AGENT_SOURCE)
    assert task.progress_every == 30 and task.detail["promised_at"] == 1.1 and "progress" not in task.detail

    apply_task_event(task, record("task-progress", 9.0, current=1, total=4, every=60), AGENT_SOURCE)
    assert task.progress_every == 60 and task.detail["progress"]["at"] == 9.0


def test_celerys_own_started_event_arriving_after_the_promise_does_not_erase_it() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, record("task-started", 1.0), AGENT_SOURCE)
    apply_task_event(task, record("task-progress", 1.1, every=30), AGENT_SOURCE)
    apply_task_event(task, {**record("task-started", 1.0), "retries": None}, None)  # the same start, by event
    assert task.progress_every == 30


def test_a_redelivered_run_starts_without_the_promise_of_the_run_before() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, record("task-started", 1.0), AGENT_SOURCE)
    apply_task_event(task, record("task-progress", 1.1, every=30), AGENT_SOURCE)
    apply_task_event(task, {"type": "task-lost", "uuid": "t1", "timestamp": 50.0, "local_received": 50.0},
                     "detector")
    apply_task_event(task, record("task-started", 60.0), AGENT_SOURCE)
    assert task.state == "STARTED" and task.progress_every is None and "promised_at" not in task.detail


def test_a_late_promise_of_an_earlier_attempt_is_ignored_and_zero_withdraws() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, record("task-started", 5.0, retries=1), AGENT_SOURCE)
    apply_task_event(task, record("task-progress", 4.0, retries=0, every=10), AGENT_SOURCE)
    assert task.progress_every is None
    apply_task_event(task, record("task-progress", 6.0, retries=1, every=10), AGENT_SOURCE)
    apply_task_event(task, record("task-progress", 7.0, retries=1, every=0), AGENT_SOURCE)
    assert task.progress_every is None and "promised_at" not in task.detail


# -- judging -----------------------------------------------------------------------------------------------

def test_silence_counts_from_the_newest_of_start_promise_and_report_of_the_running_attempt() -> None:
    detail = {"promised_at": 20.0, "progress": {"at": 50.0, "attempt": 1}}
    assert of_task(30, 10.0, 1, detail) == Promise(30.0, 50.0, 50.0)
    assert of_task(30, 10.0, 2, detail) == Promise(30.0, 20.0, None)  # that report was the attempt before
    assert of_task(None, 10.0, 1, detail) is None


def test_the_text_says_the_promise_and_the_silence() -> None:
    promise = Promise(30.0, 1000.0, None)
    assert promise.text(1004.0) == "promised progress every 30 s; last 4 s ago"
    assert promise.text(1130.0) == "promised progress every 30 s; none for 2 min 10 s"
    assert not promise.broken(1035.0) and promise.broken(1035.1)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (45.4, "45 s"), (60, "1 min"), (130, "2 min 10 s"),
                                               (3900, "1 h 5 min"), (7200, "2 h"), (93_600, "1 d 2 h")])
def test_durations_read_as_a_clock(seconds: float, text: str) -> None:
    assert clock_duration(seconds) == text


# -- the companion's API -----------------------------------------------------------------------------------

class Collected:
    """Stands in for the companion's publisher: what a task would have sent."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def put(self, item: dict[str, Any]) -> None:
        self.records.append(item)


@pytest.fixture
def eager() -> tuple[Celery, Collected]:
    app = Celery("promise-tests", set_as_current=False)
    app.conf.task_always_eager = True
    collected = Collected()
    app._webui_agent = collected  # what install() leaves on the app
    return app, collected


def test_a_promise_is_sent_at_once_and_a_changed_one_passes_the_rate_limit(eager) -> None:
    app, collected = eager

    @app.task(name="t.promising", lazy=False)
    def promising() -> list[bool]:
        return [webui.agent.expect_progress(30), webui.agent.report_progress(1, 10),
                webui.agent.report_progress(2, 10, expect_every=30),  # the same promise: rate-limited
                webui.agent.report_progress(3, 10, expect_every=60), webui.agent.expect_progress(None)]

    result = promising.apply()
    try:
        assert result.get() == [True, True, False, True, True]
    finally:
        result.forget()
    assert [(r.get("current"), r.get("every")) for r in collected.records] == [(None, 30), (1, None), (3, 60),
                                                                               (None, 0)]


def test_an_interval_under_the_rate_limit_is_refused_and_outside_a_task_nothing_is_sent() -> None:
    for bad in (0.5, 0, -3, "30", True):
        with pytest.raises(ValueError, match="at least 1"):
            webui.agent.expect_progress(bad)  # type: ignore[arg-type]
    assert webui.agent.expect_progress(30) is False
    assert webui.agent.report_progress(1, 2, expect_every=30) is False
