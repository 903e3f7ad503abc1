"""The merge rules, as a user of the task page would notice them."""
from __future__ import annotations

import json
from itertools import count

from webui.collector.merge import TaskState, apply_task_event

_clock = count()


def ev(type_: str, ts, host: str = "w1@h", **fields):
    return {"type": type_, "uuid": "t1", "hostname": host, "timestamp": ts, "pid": 10,
            "clock": next(_clock), "local_received": 100.0 + next(_clock), **fields}


def merge(*events) -> tuple[TaskState, list]:
    task = TaskState(uuid="t1")
    records = [apply_task_event(task, e) for e in events]
    return task, records


def test_a_normal_run_goes_through_every_state_and_keeps_each_time():
    task, records = merge(
        ev("task-sent", 1.0, "gen1@client", name="add", args="(1, 2)", kwargs="{}", retries=0,
           queue="celery", routing_key="celery", root_id="t1"),
        ev("task-received", 2.0, name="add", args="(1, 2)", kwargs="{}", retries=0),
        ev("task-started", 3.0),
        ev("task-succeeded", 4.5, result="3", runtime=1.5),
    )
    assert task.state == "SUCCESS"
    assert (task.sent_at, task.received_at, task.started_at, task.succeeded_at) == (1.0, 2.0, 3.0, 4.5)
    assert task.worker == "w1@h" and task.queue == "celery" and task.result == "3" and task.runtime == 1.5
    assert [r.seq for r in records] == [0, 1, 2, 3]
    assert task.event_count == 4


def test_a_late_received_never_moves_a_finished_task_back():
    task, records = merge(ev("task-started", 3.0), ev("task-succeeded", 4.0, result="1", runtime=1.0),
                          ev("task-received", 2.0, name="add", args="()", kwargs="{}", retries=0))
    assert task.state == "SUCCESS"
    assert task.received_at == 2.0 and task.name == "add"
    assert [r.type for r in records] == ["task-started", "task-succeeded", "task-received"]


def test_a_late_sent_does_not_reset_a_started_task():
    task, _ = merge(ev("task-received", 2.0, retries=0), ev("task-started", 3.0),
                    ev("task-sent", 1.0, "gen@c", retries=0, queue="q1"))
    assert task.state == "STARTED" and task.sent_at == 1.0 and task.queue == "q1"


def test_a_retry_keeps_the_previous_attempt_in_the_log_even_when_the_next_received_comes_first():
    task, records = merge(
        ev("task-received", 1.0, retries=0, args="()", kwargs="{}", name="flaky"),
        ev("task-started", 2.0),
        # the re-published message is received before the worker reports the retry
        ev("task-received", 3.1, "w2@h", retries=1, args="()", kwargs="{}", name="flaky"),
        ev("task-retried", 3.0, exception="IOError('x')", traceback="Traceback…IOError: x"),
        ev("task-started", 4.0, "w2@h"),
        ev("task-failed", 5.0, "w2@h", exception="IOError('y')", traceback="Traceback…IOError: y"),
    )
    assert task.state == "FAILURE" and task.retries == 1 and task.attempt == 1
    assert task.worker == "w2@h" and task.started_at == 4.0 and task.retried_at == 3.0
    assert task.exception == "IOError('y')"
    retried = json.loads(records[3].data)
    assert retried["exception"] == "IOError('x')" and "IOError: x" in retried["traceback"]
    assert task.detail.get("duplicate_starts") is None


def test_retried_twice_then_succeeded_ends_in_success_without_the_old_exception():
    task, _ = merge(
        ev("task-received", 1, retries=0), ev("task-started", 2), ev("task-retried", 3, exception="E1"),
        ev("task-received", 4, retries=1), ev("task-started", 5), ev("task-retried", 6, exception="E2"),
        ev("task-received", 7, retries=2), ev("task-started", 8), ev("task-succeeded", 9, result="'ok'"),
    )
    assert task.state == "SUCCESS" and task.retries == 2 and task.exception is None
    assert task.retried_at == 6 and task.result == "'ok'"


def test_a_second_start_from_another_worker_is_kept_and_does_not_overwrite_the_first():
    task, records = merge(ev("task-received", 1, retries=0), ev("task-started", 2, "w1@h"),
                          ev("task-received", 3, "w2@h", retries=0), ev("task-started", 4, "w2@h"))
    assert task.state == "STARTED" and task.worker == "w1@h" and task.started_at == 2
    assert task.executions == 2 and task.detail["duplicate_starts"] == 1
    assert [r.hostname for r in records if r.type == "task-started"] == ["w1@h", "w2@h"]


def test_a_requeued_rejection_is_followed_by_a_new_delivery_not_a_duplicate():
    task, _ = merge(ev("task-received", 1, retries=0), ev("task-started", 2, "w1@h"),
                    ev("task-rejected", 3, "w1@h", requeue=True),
                    ev("task-received", 4, "w2@h", retries=0), ev("task-started", 5, "w2@h"))
    assert task.state == "STARTED" and task.worker == "w2@h" and task.started_at == 5
    assert task.executions == 2 and "duplicate_starts" not in task.detail


def test_a_rejection_without_requeue_is_final():
    task, _ = merge(ev("task-started", 2), ev("task-rejected", 3, requeue=False),
                    ev("task-received", 4, retries=0))
    assert task.state == "REJECTED"


def test_success_beats_failure_within_one_delivery_as_in_celery():
    task, _ = merge(ev("task-started", 1), ev("task-failed", 2, exception="WorkerLostError()"),
                    ev("task-succeeded", 3, "w2@h", result="1", runtime=0.5))
    assert task.state == "SUCCESS" and task.result == "1"
    task, _ = merge(ev("task-started", 1), ev("task-succeeded", 3, result="1"), ev("task-failed", 2))
    assert task.state == "SUCCESS"


def test_a_terminated_revoke_records_its_details():
    task, _ = merge(ev("task-started", 1), ev("task-revoked", 2, terminated=True, signum=15, expired=False))
    assert task.state == "REVOKED" and task.detail == {"terminated": True, "signum": 15, "expired": False}
    assert task.revoked_at == 2


def test_a_revoke_before_anything_else_is_known_creates_the_task():
    task, _ = merge(ev("task-revoked", 1, terminated=False, signum=None, expired=True))
    assert task.state == "REVOKED" and task.worker == "w1@h" and task.detail["expired"] is True


def test_runtime_of_a_failure_is_measured_from_its_start():
    task, _ = merge(ev("task-started", 10.0), ev("task-failed", 12.5, exception="E"))
    assert task.runtime == 2.5


def test_custom_events_are_logged_without_changing_state():
    task, records = merge(ev("task-started", 1), ev("task-progress", 2, current=5, total=10))
    assert task.state == "STARTED"
    assert json.loads(records[1].data) == {"current": 5, "total": 10}


def test_a_task_first_heard_of_through_a_custom_event_is_pending_until_its_real_events_come():
    task, _ = merge(ev("task-progress", 1, current=1))
    assert task.state == "PENDING"
    task, _ = merge(ev("task-progress", 1, current=1), ev("task-started", 2), ev("task-succeeded", 3, result="1"))
    assert task.state == "SUCCESS"


def test_event_data_holds_only_what_the_task_row_does_not():
    task, records = merge(ev("task-received", 1, retries=0, name="add", args="(1,)", kwargs="{}"),
                          ev("task-succeeded", 2, result="1", runtime=0.1))
    assert records[0].data is None and records[1].data is None
    assert task.runtime == 0.1 and task.result == "1"
    # A second success (duplicate execution) keeps its own result and runtime in the log.
    _, records = merge(ev("task-started", 1), ev("task-succeeded", 2, result="1", runtime=0.1),
                       ev("task-succeeded", 3, "w2@h", result="2", runtime=0.3))
    assert json.loads(records[2].data) == {"result": "2", "runtime": 0.3}


def test_hostile_field_types_do_not_break_the_merge():
    task, records = merge(ev("task-received", "yesterday", retries="many", pid="x"),
                          ev("task-started", None), ev("task-succeeded", 3, runtime="fast"))
    assert task.state == "SUCCESS" and task.received_at is None and task.runtime is None
    assert records[0].timestamp is None and records[0].pid is None


def test_a_task_that_is_its_own_root_stores_no_root_id_but_a_workflow_member_does():
    task, records = merge(ev("task-received", 1, retries=0, root_id="t1", parent_id=None))
    assert task.root_id is None and records[0].data is None
    member = TaskState(uuid="child")
    apply_task_event(member, {**ev("task-received", 1, retries=0, root_id="t1", parent_id="t1"), "uuid": "child"})
    assert member.root_id == "t1" and member.parent_id == "t1"


def test_a_repair_fills_in_but_never_overwrites_what_real_events_said():
    task = TaskState(uuid="t1")
    apply_task_event(task, ev("task-received", 1, retries=0, name="add", args="(2, 3)", kwargs="{}"))
    apply_task_event(task, ev("task-received", 2, retries=0, name="add", args="[2, 3]", kwargs="{}",
                              eta="2030-01-01T00:00:00+00:00"), source="inspect")
    assert task.args == "(2, 3)" and task.eta == "2030-01-01T00:00:00+00:00" and task.state == "RECEIVED"


def lost(ts, host: str = "w1@h", **fields):
    return ev("task-lost", ts, host, reason="heartbeat timeout", **fields)


def merge_with_verdicts(*events) -> tuple[TaskState, list]:
    """Like `merge`, with each `task-lost` applied as the collector does: a repair from the "detector"."""
    task = TaskState(uuid="t1")
    records = [apply_task_event(task, e, "detector" if e["type"] == "task-lost" else None) for e in events]
    return task, records


def test_a_started_task_whose_worker_died_is_lost_with_the_worker_and_the_time():
    task, records = merge_with_verdicts(ev("task-received", 1, retries=0), ev("task-started", 2), lost(30.0))
    assert task.state == "LOST" and task.worker == "w1@h"
    assert task.detail == {"lost_at": 30.0, "lost_worker": "w1@h", "lost_reason": "heartbeat timeout"}
    assert records[-1].type == "task-lost" and records[-1].source == "detector"
    assert task.failed_at is None and task.exception is None  # lost is not a failure


def test_a_lost_task_redelivered_to_another_worker_is_started_again_there():
    task, _ = merge_with_verdicts(ev("task-received", 1, retries=0), ev("task-started", 2), lost(30),
                                  ev("task-received", 40, "w2@h", retries=0), ev("task-started", 41, "w2@h"))
    assert task.state == "STARTED" and task.worker == "w2@h" and task.started_at == 41
    assert task.executions == 2 and task.retries == 0 and "duplicate_starts" not in task.detail
    task, _ = merge_with_verdicts(ev("task-started", 2), lost(30), ev("task-started", 41, "w2@h"),
                                  ev("task-succeeded", 50, "w2@h", result="1", runtime=9.0))
    assert task.state == "SUCCESS" and task.worker == "w2@h"


def test_a_lost_task_whose_worker_comes_back_and_finishes_it_is_a_success_or_a_failure():
    task, _ = merge_with_verdicts(ev("task-started", 2), lost(30), ev("task-succeeded", 35, result="1", runtime=33.0))
    assert task.state == "SUCCESS" and task.result == "1" and task.runtime == 33.0
    task, _ = merge_with_verdicts(ev("task-started", 2), lost(30), ev("task-failed", 35, exception="E()"))
    assert task.state == "FAILURE"
    task, _ = merge_with_verdicts(ev("task-started", 2), lost(30),
                                  ev("task-retried", 35, exception="E()"), ev("task-received", 36, retries=1))
    assert task.state == "RECEIVED" and task.attempt == 1


def test_a_late_verdict_changes_nothing_once_the_task_moved_on():
    task, records = merge_with_verdicts(ev("task-started", 2), ev("task-succeeded", 3, result="1", runtime=1.0),
                                        lost(30))
    assert task.state == "SUCCESS" and "lost_at" not in task.detail
    assert records[-1].type == "task-lost"  # kept in the log all the same
    # redelivered and started on w2 before the verdict about w1 was merged
    task, _ = merge_with_verdicts(ev("task-started", 2), ev("task-rejected", 3, requeue=True),
                                  ev("task-started", 4, "w2@h"), lost(30, "w1@h"))
    assert task.state == "STARTED" and task.worker == "w2@h"
    task, _ = merge_with_verdicts(ev("task-received", 1, retries=0), lost(30))
    assert task.state == "RECEIVED"  # not started: a prefetched message goes back to the queue


def test_a_task_lost_event_on_the_event_channel_is_only_a_custom_event():
    task, records = merge(ev("task-started", 2), lost(30))
    assert task.state == "STARTED" and "lost_at" not in task.detail
    assert records[-1].type == "task-lost"


def unresolved(before: float) -> dict:
    return {"type": "task-unresolved", "uuid": "t1", "timestamp": before, "before": before,
            "local_received": 500.0}


def test_a_task_reconciliation_could_not_find_is_unknown_since_its_last_event_until_it_is_heard_of():
    task, _ = merge(ev("task-received", 1, retries=0), ev("task-started", 2))
    last_heard = task.updated_at
    apply_task_event(task, unresolved(before=400.0), "reconcile")
    assert task.state == "STARTED" and task.detail["unknown_since"] == last_heard
    apply_task_event(task, ev("task-succeeded", 3, result="1"))
    assert task.state == "SUCCESS" and "unknown_since" not in task.detail


def test_no_unknown_mark_for_a_finished_task_one_heard_of_since_or_one_claimed_from_the_event_channel():
    finished, _ = merge(ev("task-received", 1, retries=0), ev("task-succeeded", 2, result="1"))
    apply_task_event(finished, unresolved(before=400.0), "reconcile")
    heard_since, _ = merge(ev("task-received", 1, retries=0))
    apply_task_event(heard_since, unresolved(before=heard_since.updated_at), "reconcile")  # read before it came
    forged, _ = merge(ev("task-received", 1, retries=0))
    apply_task_event(forged, unresolved(before=400.0))  # anyone may publish a task-unresolved
    assert all("unknown_since" not in t.detail for t in (finished, heard_since, forged))


def test_a_real_start_after_a_repair_that_saw_the_same_run_is_one_execution():
    # Reconciliation asked the worker (inspect: active) before the run's own task-started was stored: the
    # worker's event reports the same run, not a second one (no duplicate-execution alarm), and its time wins.
    task = TaskState(uuid="t1")
    apply_task_event(task, ev("task-received", 1, retries=0))
    apply_task_event(task, ev("task-started", 2.5), source="inspect")
    apply_task_event(task, ev("task-started", 2.0))
    assert task.state == "STARTED" and task.executions == 1 and task.started_at == 2.0
    assert "duplicate_starts" not in task.detail
    apply_task_event(task, ev("task-started", 3.0))  # a second real start of the same delivery is a duplicate
    assert task.executions == 2 and task.detail["duplicate_starts"] == 1


def test_a_real_start_on_another_worker_than_the_repair_saw_is_a_second_execution():
    task = TaskState(uuid="t1")
    apply_task_event(task, ev("task-received", 1, retries=0))
    apply_task_event(task, ev("task-started", 2.5), source="inspect")
    apply_task_event(task, ev("task-started", 2.0, "w2@h"))
    assert task.executions == 2 and task.detail["duplicate_starts"] == 1 and task.worker == "w1@h"
