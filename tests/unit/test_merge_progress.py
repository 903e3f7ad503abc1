"""Progress reports (webui.agent.report_progress) keep the newest attempt's latest figure on the task."""
from __future__ import annotations

from webui.collector.merge import AGENT_SOURCE, TaskState, apply_task_event


def report(ts: float, current: float, retries: int = 0, **fields: object) -> dict[str, object]:
    return {"type": "task-progress", "uuid": "t1", "hostname": "w1@h", "timestamp": ts, "local_received": ts,
            "current": current, "total": 10, "retries": retries, **fields}


def started(ts: float, retries: int) -> dict[str, object]:
    return {"type": "task-started", "uuid": "t1", "hostname": "w1@h", "timestamp": ts, "local_received": ts,
            "retries": retries}


def test_it_keeps_the_latest_report_of_the_running_attempt() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, started(1.0, 0), AGENT_SOURCE)
    apply_task_event(task, report(3.0, 4, message="four"), AGENT_SOURCE)
    apply_task_event(task, report(2.0, 2), AGENT_SOURCE)  # late: older than what is known

    assert task.detail["progress"] == {"current": 4.0, "total": 10.0, "at": 3.0, "attempt": 0, "message": "four"}
    assert task.state == "STARTED"


def test_a_late_report_of_an_earlier_attempt_does_not_overwrite_the_retry() -> None:
    task = TaskState(uuid="t1")
    apply_task_event(task, started(1.0, 0), AGENT_SOURCE)
    apply_task_event(task, started(5.0, 1), AGENT_SOURCE)
    apply_task_event(task, report(6.0, 1, retries=1), AGENT_SOURCE)
    apply_task_event(task, report(4.0, 9, retries=0), AGENT_SOURCE)

    assert task.detail["progress"]["current"] == 1.0 and task.detail["progress"]["attempt"] == 1


def test_a_report_without_a_number_is_logged_but_not_shown() -> None:
    task = TaskState(uuid="t1")
    record = apply_task_event(task, report(1.0, "lots"), AGENT_SOURCE)  # type: ignore[arg-type]

    assert "progress" not in task.detail and record.type == "task-progress"
