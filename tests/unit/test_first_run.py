"""The overview's first-run guidance: which step an empty dashboard says it is waiting for."""
from __future__ import annotations

import pytest

from webui.views.first_run import NO_TASK_EVENTS, NO_TASK_SENT, NO_WORKERS, STEPS, next_step


def test_with_no_worker_seen_it_waits_for_a_worker_whatever_else_is_known():
    assert next_step(False, False, 0, 0) is NO_WORKERS
    assert next_step(False, True, 10, 10) is NO_WORKERS


def test_with_workers_but_no_task_event_it_waits_for_task_events():
    assert next_step(True, False, 0, 0) is NO_TASK_EVENTS


def test_when_none_of_the_recent_tasks_was_seen_being_sent_it_asks_for_task_send_sent_event():
    assert next_step(True, True, 12, 12) is NO_TASK_SENT


@pytest.mark.parametrize(("received", "without_sent"), [(0, 0), (12, 0), (12, 11)])
def test_it_says_nothing_once_tasks_are_seen_being_sent_or_none_has_settled_yet(received, without_sent):
    # One task-sent among the sample is enough: some senders are set up right (the doctor judges the share).
    assert next_step(True, True, received, without_sent) is None


def test_each_step_names_its_docs_section_and_a_one_line_fix():
    assert [step.docs for step in STEPS] == [f"docs/troubleshooting.md#{anchor}" for anchor in
                                             ("no-workers", "no-task-events", "no-task-sent-events")]
    assert all("\n" not in step.fix and step.fix for step in STEPS)
