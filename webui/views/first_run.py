"""The overview's first-run guidance: what an empty dashboard is waiting for, the one-line fix, where to read more.

Three steps, in the order a new setup meets them: a worker seen at all, task events from the workers, and
`task-sent` events from whatever sends tasks. The overview shows the first step not met yet, and nothing once all
three are. The config doctor runs the same checks in full (and for a cluster that is past its first minute).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from webui.detect import doctor
from webui.store.models import Task, Worker
from webui.store.worker_queries import visible

DOCS_PAGE = "docs/troubleshooting.md"


@dataclass(frozen=True)
class Step:
    label: str  # the step in the checklist
    anchor: str  # the section of DOCS_PAGE that explains it
    waiting_for: str
    fix: str  # one line of code or configuration
    doctor_check: str | None  # the config doctor's check on the same thing, if it has one

    @property
    def docs(self) -> str:
        return f"{DOCS_PAGE}#{self.anchor}"


NO_WORKERS = Step(
    "A worker seen", "no-workers", "Waiting for a worker: none has been seen on this broker yet.",
    "celery -A proj worker -E   # on the broker shown below, with task events on", None)
NO_TASK_EVENTS = Step(
    "Task events from the workers", "no-task-events",
    "Workers are here, but no task event has arrived: no task has run yet, or the workers send no task events.",
    "worker_send_task_events = True   # or start each worker with -E", "task_events")
NO_TASK_SENT = Step(
    "task-sent events from the senders", "no-task-sent-events",
    "Tasks run, but none was seen being sent: queued tasks stay invisible until a worker takes them.",
    "task_send_sent_event = True   # in every app that sends tasks: web processes, beat, scripts",
    "task_send_sent_event")
STEPS = (NO_WORKERS, NO_TASK_EVENTS, NO_TASK_SENT)


def next_step(workers_seen: bool, task_events_seen: bool, received: int, without_sent: int) -> Step | None:
    """The first step not met: `received` recent tasks a worker took, `without_sent` of them with no task-sent."""
    if not workers_seen:
        return NO_WORKERS
    if not task_events_seen:
        return NO_TASK_EVENTS
    if received and without_sent == received:
        return NO_TASK_SENT
    return None


def current_step(now: float | None = None) -> Step | None:
    """`next_step` on the store: three bounded reads (two EXISTS, the doctor's sample of received tasks)."""
    if not Worker.select().where(visible()).exists():
        return NO_WORKERS
    if not _task_events_seen():
        return NO_TASK_EVENTS
    received, without_sent = doctor.sent_events(time.time() if now is None else now)
    return next_step(True, True, received, without_sent)


def _task_events_seen() -> bool:
    """A worker's task event recorded on the worker, or a task a worker received: task events that come before the
    worker's first heartbeat (a worker started before the UI) are stored on the task but not on the worker."""
    if Worker.select().where(visible() & Worker.last_task_event_at.is_null(False)).exists():
        return True
    return bool(Task.select().where(Task.received_at.is_null(False)).exists())
