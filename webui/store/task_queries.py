"""Read queries of the task detail page: one task, its event timeline, the gaps around it, its workflow.

Plain functions returning plain data. The attempt grouping (`group_attempts`) is pure so it can be tested
with hand-made events.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from webui.store.models import CollectorGap, Task, TaskEvent, TaskLog

# Children are looked up by parent_id, which has no index yet: the LIMIT bounds the scan's output (and the
# page). An index on parent_id/root_id comes with the scale issue, not with this page.
MAX_CHILDREN = 100
MAX_LOG_LINES = 20_000  # log lines one task page shows, all attempts together

EVENT_LABELS = {
    "task-sent": "sent", "task-received": "received", "task-started": "started",
    "task-succeeded": "succeeded", "task-failed": "failed", "task-retried": "retried",
    "task-revoked": "revoked", "task-rejected": "rejected", "task-cancelled": "cancelled",
    "task-lost": "lost",
}
SOURCE_LABELS = {"inspect": "repaired from inspect", "backend": "from result backend",
                 "detector": "the monitor's verdict"}
_OUTCOME_KEYS = ("exception", "traceback")


@dataclass
class TimelineEvent:
    """One row of `task_event`, decoded for display."""

    seq: int
    type: str
    timestamp: float | None
    received: float
    hostname: str | None
    pid: int | None
    source: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.type, "custom")

    @property
    def source_label(self) -> str | None:
        return SOURCE_LABELS.get(self.source or "", self.source)

    @property
    def delay(self) -> float | None:
        """How long the event took to reach the collector (negative when the sender's clock runs ahead)."""
        return None if self.timestamp is None else self.received - self.timestamp

    @property
    def outcome(self) -> dict[str, Any]:
        """Exception and traceback carried by this event (a failure's or a retry's own).

        `self.retry()` without `exc=` reports the exception as the text "None": left out.
        """
        return {k: self.data[k] for k in _OUTCOME_KEYS if self.data.get(k) and self.data[k] != "None"}

    @property
    def extra(self) -> dict[str, Any]:
        """The other fields of `data`, shown as they are."""
        return {k: v for k, v in self.data.items() if k not in _OUTCOME_KEYS}


@dataclass
class Attempt:
    number: int
    events: list[TimelineEvent] = field(default_factory=list)

    @property
    def workers(self) -> list[str]:
        return sorted({e.hostname for e in self.events if e.hostname and e.type != "task-sent"})


@dataclass
class Workflow:
    root: Task | None  # None: the root is another task this monitor never saw
    root_uuid: str
    parent: Task | None
    parent_uuid: str | None
    children: list[Task]
    more_children: bool


def task_by_uuid(uuid: str) -> Task | None:
    return Task.get_or_none(Task.uuid == uuid)


def task_names(limit: int) -> list[str]:
    """The distinct task names stored (at most `limit`), sorted.

    A loose index scan of `task (name, id)`: one probe for the next name after each, so the cost follows the
    number of names, not of tasks (`SELECT DISTINCT` reads every entry of the index: seconds at 10M tasks).
    """
    db = Task._meta.database
    sql = ("WITH RECURSIVE names (name) AS ("
           " SELECT MIN(name) FROM task"
           " UNION ALL"
           " SELECT (SELECT MIN(t.name) FROM task AS t WHERE t.name > names.name) FROM names"
           " WHERE names.name IS NOT NULL)"
           f" SELECT name FROM names WHERE name IS NOT NULL LIMIT {db.param}")
    return [name for (name,) in db.execute_sql(sql, (limit,)).fetchall()]


def task_timeline(task: Task) -> list[TimelineEvent]:
    """Every stored event of `task`, in arrival order."""
    rows = TaskEvent.select().where(TaskEvent.task_id == task.id).order_by(TaskEvent.seq)
    return [
        TimelineEvent(row.seq, row.type, row.timestamp, row.received, row.hostname, row.pid, row.source,
                      _decode(row.data))
        for row in rows
    ]


def task_logs(task: Task) -> dict[int, list[TaskLog]]:
    """The lines the companion captured (webui.agent.logs), by attempt number, in arrival order. The companion
    caps each attempt (1,000 lines by default); MAX_LOG_LINES bounds the page whatever it was told."""
    by_attempt: dict[int, list[TaskLog]] = {}
    query = TaskLog.select().where(TaskLog.task_id == task.id).order_by(TaskLog.attempt, TaskLog.id)
    for line in query.limit(MAX_LOG_LINES):
        by_attempt.setdefault(line.attempt, []).append(line)
    return by_attempt


def json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object stored in a text column, or None when the text is empty or not an object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _decode(data: str | None) -> dict[str, Any]:
    """An event's data for display: what is not a JSON object is still shown, as it was stored."""
    value = json_object(data)
    if value is not None:
        return value
    return {"data": data} if data else {}


def group_attempts(events: list[TimelineEvent]) -> list[Attempt]:
    """Split the timeline into attempts: a `task-retried` ends the attempt it belongs to.

    A retry re-sends the task before the worker reports `task-retried`, so the next attempt's `task-sent` and
    `task-received` often arrive first: those that follow the attempt's last `task-started` move to the next
    attempt.
    """
    attempts = [Attempt(1)]
    for event in events:
        current = attempts[-1]
        if event.type != "task-retried":
            current.events.append(event)
            continue
        starts = [i for i, e in enumerate(current.events) if e.type == "task-started"]
        after = starts[-1] + 1 if starts else len(current.events)
        overtaking = [e for e in current.events[after:] if e.type in ("task-sent", "task-received")]
        current.events = [e for e in current.events if e not in overtaking]
        current.events.append(event)
        attempts.append(Attempt(current.number + 1, overtaking))
    if len(attempts) > 1 and not attempts[-1].events:
        attempts.pop()  # retried, and nothing of the next attempt seen yet
    return attempts


def gaps_during(start: float | None, end: float | None) -> list[CollectorGap]:
    """Gaps that overlap [start, end]; an open gap (no `ended_at`) lasts until now."""
    if start is None:
        return []
    query = CollectorGap.select().where((CollectorGap.ended_at.is_null()) | (CollectorGap.ended_at >= start))
    if end is not None:
        query = query.where(CollectorGap.started_at <= end)
    return list(query.order_by(CollectorGap.started_at))


def task_lifetime(task: Task, events: list[TimelineEvent]) -> tuple[float | None, float | None]:
    """From the first to the last time known of the task (event times and received times); an unfinished
    task lives on until now (None)."""
    times = [t for e in events for t in (e.timestamp, e.received) if t is not None]
    times += [t for t in (task.sent_at, task.received_at, task.started_at) if t is not None]
    if not times:
        return None, None
    finished = task.state in ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")
    return min(times), (max(times) if finished else None)


def workflow(task: Task) -> Workflow:
    """The task's root, parent and (at most MAX_CHILDREN) children."""
    root_uuid = task.root_id or task.uuid  # NULL root_id: the task is its own root
    root = task if root_uuid == task.uuid else task_by_uuid(root_uuid)
    # A retry is re-sent from inside the task, so Celery makes the task its own parent: not a workflow link.
    parent_uuid = task.parent_id if task.parent_id != task.uuid else None
    parent = task_by_uuid(parent_uuid) if parent_uuid else None
    children = list(Task.select().where((Task.parent_id == task.uuid) & (Task.uuid != task.uuid))
                    .order_by(Task.sent_at, Task.id).limit(MAX_CHILDREN + 1))
    return Workflow(root, root_uuid, parent, parent_uuid, children[:MAX_CHILDREN], len(children) > MAX_CHILDREN)


@dataclass
class TimelineRow:
    """An event, or a gap shown where it happened in the timeline."""

    event: TimelineEvent | None = None
    gap: CollectorGap | None = None


def place_gaps(attempts: list[Attempt], gaps: list[CollectorGap]) -> list[list[TimelineRow]]:
    """Rows of each attempt, with each gap before the first event received after the gap began."""
    pending = sorted(gaps, key=lambda g: g.started_at)
    rows: list[list[TimelineRow]] = []
    for attempt in attempts:
        current: list[TimelineRow] = []
        for event in attempt.events:
            while pending and pending[0].started_at <= event.received:
                current.append(TimelineRow(gap=pending.pop(0)))
            current.append(TimelineRow(event=event))
        rows.append(current)
    if rows:
        rows[-1].extend(TimelineRow(gap=g) for g in pending)
    return rows
