"""One transition reported as a Celery event and as a companion record is merged once (webui.collector.sources)."""
from __future__ import annotations

from typing import Any

from webui.collector import merge, sources
from webui.collector.merge import TaskState


def event(etype: str, ts: float, host: str = "w1@h", **fields: Any) -> dict[str, Any]:
    return {"type": etype, "uuid": "t1", "hostname": host, "timestamp": ts, "local_received": ts, **fields}


def merged(task: TaskState, reports: list[tuple[dict[str, Any], str | None]]) -> list[str]:
    """Merge like the writer does; return "type/source" of what was kept."""
    kept = []
    for report, source in reports:
        if not sources.is_repeat(task, report, source):
            merge.apply_task_event(task, report, source)
            kept.append(f"{report['type']}/{source or 'event'}")
    return kept


def test_it_keeps_whichever_report_comes_first_and_drops_the_other() -> None:
    task = TaskState(uuid="t1")
    kept = merged(task, [
        (event("task-received", 1.0, retries=0), None), (event("task-received", 1.01, retries=0), "agent"),
        (event("task-started", 2.01, retries=0), "agent"), (event("task-started", 2.0), None),
        (event("task-succeeded", 3.0), None), (event("task-succeeded", 3.01, retries=0, runtime=0.5), "agent"),
    ])

    assert kept == ["task-received/event", "task-started/agent", "task-succeeded/event"]
    assert task.state == "SUCCESS" and task.executions == 1 and task.event_count == 3


def test_a_record_delivered_again_is_dropped_even_when_it_was_the_first_report() -> None:
    task = TaskState(uuid="t1")
    record = event("task-started", 2.0, retries=0)

    assert merged(task, [(record, "agent"), (dict(record), "agent"), (event("task-started", 2.1), None)]) \
        == ["task-started/agent"]
    assert task.executions == 1


def test_two_real_executions_of_one_attempt_stay_two() -> None:
    task = TaskState(uuid="t1")
    kept = merged(task, [
        (event("task-started", 2.0), None), (event("task-started", 2.01, retries=0), "agent"),
        (event("task-started", 5.0), None), (event("task-started", 5.01, retries=0), "agent"),
    ])

    assert kept == ["task-started/event", "task-started/event"]
    assert task.detail["duplicate_starts"] == 1


def test_each_attempt_of_a_retried_task_is_its_own_transition() -> None:
    task = TaskState(uuid="t1")
    reports = []
    for attempt in range(3):
        reports += [(event("task-received", 10.0 * attempt, retries=attempt), None),
                    (event("task-started", 10.0 * attempt + 1, retries=attempt), "agent"),
                    (event("task-started", 10.0 * attempt + 1.5), None)]
        if attempt < 2:
            reports += [(event("task-retried", 10.0 * attempt + 2, retries=attempt), "agent"),
                        (event("task-retried", 10.0 * attempt + 2.5), None)]

    kept = merged(task, reports)

    assert kept.count("task-started/agent") == 3 and kept.count("task-retried/agent") == 2
    assert not [k for k in kept if k in ("task-started/event", "task-retried/event")]
    assert task.attempt == 2 and task.state == "STARTED"


def test_repairs_and_custom_events_are_not_paired() -> None:
    task = TaskState(uuid="t1")
    assert not sources.is_repeat(task, event("task-started", 1.0), "inspect")
    assert not sources.is_repeat(task, event("task-progress", 1.0), None)
    assert task.detail == {}
